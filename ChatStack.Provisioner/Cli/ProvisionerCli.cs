using System.CommandLine;
using System.Text.RegularExpressions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.FirestoreAdmin;
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
        var minBackoff = new Option<int>("--retry-min-backoff-seconds")
        {
            Description = "Redelivery backoff after a failed delivery of a chat event, doubling up to the maximum (default 10).",
            DefaultValueFactory = _ => 10,
        };
        var maxBackoff = new Option<int>("--retry-max-backoff-seconds")
        {
            Description = "Longest redelivery backoff (default 600).",
            DefaultValueFactory = _ => 600,
        };
        // Pub/Sub's own limits for a retry policy.
        minBackoff.Validators.Add(result => ValidateBackoff(result, result.GetValueOrDefault<int>()));
        maxBackoff.Validators.Add(result => ValidateBackoff(result, result.GetValueOrDefault<int>()));
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Print the plan (create / update / unchanged per resource) and change nothing. Exit code 2 when changes are pending.",
        };

        var provision = new Command("provision", "Create or update ChatStack's Pub/Sub and BigQuery resources (and, on real Google Cloud, Firestore's composite index and TTL policies) so they match the desired state.")
        {
            dataset, location, project, minBackoff, maxBackoff, dryRun,
        };
        provision.Validators.Add(result =>
        {
            if (result.GetValue(minBackoff) > result.GetValue(maxBackoff))
            {
                result.AddError("--retry-min-backoff-seconds must not exceed --retry-max-backoff-seconds.");
            }
        });
        provision.SetAction((parseResult, cancellationToken) => RunAsync(
            new ProvisionRequest(parseResult.GetValue(dataset)!, parseResult.GetValue(location)!, parseResult.GetValue(project),
                TimeSpan.FromSeconds(parseResult.GetValue(minBackoff)), TimeSpan.FromSeconds(parseResult.GetValue(maxBackoff)),
                parseResult.GetValue(dryRun)),
            parseResult.InvocationConfiguration, configureHost, cancellationToken));

        return new RootCommand("ChatStack provisioner: converges Google Cloud infrastructure to what ChatStack needs.") { provision };
    }

    private sealed record ProvisionRequest(string Dataset, string Location, string? Project, TimeSpan MinBackoff, TimeSpan MaxBackoff, bool DryRun);

    private static void ValidateBackoff(System.CommandLine.Parsing.OptionResult result, int seconds)
    {
        if (seconds is < 0 or > 600)
        {
            result.AddError($"{result.Option.Name} must be between 0 and 600 seconds, not {seconds}.");
        }
    }

    private static async Task<int> RunAsync(ProvisionRequest request,
        InvocationConfiguration console, Action<HostApplicationBuilder>? configureHost, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ApplicationName = "ChatStack.Provisioner" });
        // A command: stdout is the plan, so a script can read it. Logs go to stderr, without a line per HTTP request
        // or the host's start and stop lines, which buried the plan.
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.Configure<ConsoleLifetimeOptions>(lifetime => lifetime.SuppressStatusMessages = true);
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
        configureHost?.Invoke(builder);
        var options = GoogleCloudOptions.FromConfiguration(builder.Configuration);
        var projectId = request.Project ?? options.ProjectId;
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
        // Firestore's composite index and TTL policies are only for real Firestore (no emulator set at all; the emulator
        // needs no index, deletes nothing by TTL and has no admin API), or for an admin endpoint configured in its place (tests).
        var firestoreIndexes = options is { PubSubEmulatorHost: null, FirestoreEmulatorHost: null, BigQueryEmulatorHost: null }
            || !string.IsNullOrWhiteSpace(builder.Configuration["GoogleCloud:FirestoreAdminEndpoint"]);
        if (firestoreIndexes)
        {
            builder.AddFirestoreIndexAdmin();
        }

        using var host = builder.Build();
        await host.StartAsync(cancellationToken);
        var logger = host.Services.GetRequiredService<ILogger<ProvisioningRun>>();
        try
        {
            var settings = new ProvisionSettings(projectId, request.Dataset, request.Location)
            {
                RetryMinimumBackoff = request.MinBackoff,
                RetryMaximumBackoff = request.MaxBackoff,
                FirestoreDatabase = options.FirestoreDatabase,
            };
            var resources = ChatStackInfrastructure.Resources(settings,
                host.Services.GetRequiredService<IPubSubAdmin>(), host.Services.GetRequiredService<IBigQueryClient>(),
                firestoreIndexes ? host.Services.GetRequiredService<IFirestoreIndexAdmin>() : null);
            var result = await new ProvisioningRun(resources, console.Output, logger).RunAsync(request.DryRun, cancellationToken);
            return result.ExitCode;
        }
        catch (Exception e) when (CredentialsProblem(e) is { } missing)
        {
            // Known set-up problem: the fix, once, no stack trace.
            logger.LogError("Provisioning failed: {Reason}", missing.Message);
            await console.Error.WriteLineAsync($"Provisioning failed: {missing.Message}");
            return ProvisioningResult.Failed;
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
        {
            // Stopped (Ctrl+C, SIGTERM) with a call in flight, which gRPC tells as CANCELLED: our stop, not a failure of
            // the service. What was applied stays, and a second run converges the rest.
            logger.LogInformation("Provisioning stopped before it finished");
            await console.Error.WriteLineAsync("Provisioning stopped before it finished; run it again to converge the rest.");
            return ProvisioningResult.Stopped;
        }
        catch (RpcException e)
        {
            var target = options.PubSubEmulatorHost is { } emulator ? $"the Pub/Sub emulator at {emulator}" : GoogleCloudChannels.PubSubEndpoint;
            logger.LogError(e, "Provisioning failed talking to {Target}", target);
            await console.Error.WriteLineAsync($"Provisioning failed: {target} answered {e.StatusCode}: {e.Status.Detail}");
            return ProvisioningResult.Failed;
        }
        catch (FirestoreAdminException e)
        {
            logger.LogError(e, "Provisioning failed talking to the Firestore Admin API");
            await console.Error.WriteLineAsync($"Provisioning failed: {e.Message}");
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

    // gRPC wraps an exception of the call credentials in an RpcException (Internal); BigQuery's handler throws it as is.
    private static GoogleCloudCredentialsException? CredentialsProblem(Exception e) =>
        e as GoogleCloudCredentialsException ?? e.InnerException as GoogleCloudCredentialsException
        ?? (e as RpcException)?.Status.DebugException as GoogleCloudCredentialsException;

    [GeneratedRegex("^[A-Za-z0-9_]{1,1024}$")]
    private static partial Regex DatasetId();

    // Optionally domain-scoped (example.com:project), as older projects are.
    [GeneratedRegex("^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    private static partial Regex ProjectId();
}
