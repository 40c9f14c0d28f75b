using System.CommandLine;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.Provisioner.Cli;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.Support;

/// <summary>The project's own clients and provisioner, pointed at the stack's emulators for one project.</summary>
public sealed class EmulatorClients(StackFixture stack, string projectId) : IDisposable
{
    private ServiceProvider? _services;

    public string ProjectId => projectId;

    public IBigQueryClient BigQuery => (_services ??= new ServiceCollection()
        .AddBigQueryClient(new ConfigurationBuilder().Build(), options =>
        {
            options.EmulatorHost = stack.BigQueryHost;
            options.ProjectId = projectId;
        })
        .BuildServiceProvider()).GetRequiredService<IBigQueryClient>();

    /// <summary>
    /// Runs <c>ChatStack.Provisioner</c> in process against the emulators; <paramref name="pubSubHost"/> and
    /// <paramref name="projectOverride"/> let a test break them, <paramref name="more"/> adds settings.
    /// </summary>
    public async Task<(int ExitCode, string Output, string Error)> ProvisionAsync(string[] args, string? pubSubHost = null, string? projectOverride = "",
        IDictionary<string, string?>? more = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var settings = new Dictionary<string, string?>
        {
            ["PUBSUB_EMULATOR_HOST"] = pubSubHost ?? stack.PubSubHost,
            ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
            ["GOOGLE_CLOUD_PROJECT"] = projectOverride == "" ? projectId : projectOverride,
        };
        var exitCode = await ProvisionerCli.Create(host => host.Configuration.AddInMemoryCollection(settings).AddInMemoryCollection(more ?? new Dictionary<string, string?>()))
            .Parse(args).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    public void Dispose() => _services?.Dispose();
}
