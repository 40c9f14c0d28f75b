using System.CommandLine;
using System.Text.RegularExpressions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.Infrastructure;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChatStack.Provisioner.Cli;

/// <summary>
/// <c>provision [--dataset NAME] [--location LOC] [--project ID] [--dry-run]</c>. Exit codes: 0 converged (or
/// nothing to do), 1 failed, 2 dry run with changes pending, 3 an incompatible resource was found and left alone.
/// </summary>
public static partial class ProvisionerCli
{
    /// <param name="configureHost">Lets tests point the run at their own emulators and project.</param>
    public static RootCommand Create(Action<HostApplicationBuilder>? configureHost = null)
    {
        var dataset = new Option<string>("--dataset")
        {
            Description = "BigQuery dataset of the warehouse.",
            DefaultValueFactory = _ => ResourceNames.Dataset,
        };
        dataset.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (!DatasetId().IsMatch(value ?? ""))
            {
                result.AddError($"Invalid dataset name '{value}': use 1-1024 letters, digits or underscores.");
            }
        });

        var location = new Option<string>("--location")
        {
            Description = "BigQuery location of the dataset (for example US, EU, europe-west1).",
            DefaultValueFactory = _ => "US",
        };
        var project = new Option<string?>("--project")
        {
            Description = "Google Cloud project id. Defaults to GOOGLE_CLOUD_PROJECT.",
        };
        project.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string?>();
            if (value is not null && !ProjectId().IsMatch(value))
            {
                result.AddError($"Invalid project id '{value}': 6-30 lowercase letters, digits or hyphens, starting with a letter.");
            }
        });
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Print the plan (create / update / unchanged per resource) and change nothing. Exit code 2 when changes are pending.",
        };

        var provision = new Command("provision", "Create or update ChatStack's Pub/Sub and BigQuery resources so they match the desired state.")
        {
            dataset, location, project, dryRun,
        };
        provision.SetAction((parseResult, cancellationToken) => RunAsync(
            parseResult.GetValue(dataset)!, parseResult.GetValue(location)!, parseResult.GetValue(project),
            parseResult.GetValue(dryRun), parseResult.InvocationConfiguration, configureHost, cancellationToken));

        return new RootCommand("ChatStack provisioner: converges Google Cloud infrastructure to what ChatStack needs.") { provision };
    }

    private static async Task<int> RunAsync(string dataset, string location, string? projectOption, bool dryRun,
        InvocationConfiguration console, Action<HostApplicationBuilder>? configureHost, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ApplicationName = "ChatStack.Provisioner" });
        configureHost?.Invoke(builder);
        var options = GoogleCloudOptions.FromConfiguration(builder.Configuration);
        var projectId = projectOption ?? options.ProjectId;
        if (string.IsNullOrWhiteSpace(projectId) || !ProjectId().IsMatch(projectId))
        {
            await console.Error.WriteLineAsync(string.IsNullOrWhiteSpace(projectId)
                ? "No Google Cloud project id: pass --project or set GOOGLE_CLOUD_PROJECT."
                : $"Invalid project id '{projectId}' in GOOGLE_CLOUD_PROJECT: 6-30 lowercase letters, digits or hyphens, starting with a letter.");
            return ProvisioningResult.Failed;
        }

        builder.AddBasicServiceDefaults();
        builder.AddPubSubClients();
        builder.AddBigQueryClient(bigQuery => bigQuery.ProjectId = projectId);
        using var host = builder.Build();
        await host.StartAsync(cancellationToken);
        var logger = host.Services.GetRequiredService<ILogger<ProvisioningRun>>();
        try
        {
            var settings = new ProvisionSettings(projectId, dataset, location);
            var resources = ChatStackInfrastructure.Resources(settings,
                host.Services.GetRequiredService<IPubSubAdmin>(), host.Services.GetRequiredService<IBigQueryClient>());
            var result = await new ProvisioningRun(resources, console.Output, logger).RunAsync(dryRun, cancellationToken);
            return result.ExitCode;
        }
        catch (RpcException e)
        {
            var target = options.PubSubEmulatorHost is { } emulator ? $"the Pub/Sub emulator at {emulator}" : GoogleCloudChannels.PubSubEndpoint;
            logger.LogError(e, "Provisioning failed talking to {Target}", target);
            await console.Error.WriteLineAsync($"Provisioning failed: {target} answered {e.StatusCode}: {e.Status.Detail}");
            return ProvisioningResult.Failed;
        }
        catch (Exception e) when (e is BigQueryException or HttpRequestException)
        {
            var target = options.BigQueryEmulatorHost is { } emulator ? $"the BigQuery emulator at {emulator}" : "BigQuery";
            logger.LogError(e, "Provisioning failed talking to {Target}", target);
            await console.Error.WriteLineAsync($"Provisioning failed: {target}: {e.Message}");
            return ProvisioningResult.Failed;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_]{1,1024}$")]
    private static partial Regex DatasetId();

    // Optionally domain-scoped (example.com:project), as older projects are.
    [GeneratedRegex("^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    private static partial Regex ProjectId();
}
