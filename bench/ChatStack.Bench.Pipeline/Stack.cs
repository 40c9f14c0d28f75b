using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Hosting.GoogleCloud;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ChatStack.Bench.Pipeline;

/// <summary>
/// The real AppHost (emulators, provisioner, chat API) started through Aspire.Hosting.Testing, with two changes for
/// measuring: the offline model streams at full speed, and a second chat API with Firestore writes off runs beside
/// the first so the hot path's cost is a difference between two otherwise equal services. The analytics worker is
/// left out: the ingestion figures start their own on a backlog.
/// </summary>
internal sealed class Stack : IAsyncDisposable
{
    public const string ChatApi = "chat-api";
    public const string ChatApiMemory = "chat-api-memory";
    public const string ChatApiLocalLimits = "chat-api-local-limits";
    public const string ProjectId = "chatstack-local";

    // Set on every project, so a benchmark finds this stack's processes among other stacks on the machine.
    public const string RunIdVariable = "CHATSTACK_BENCH_RUN";

    private readonly ChatStack.Tests.Support.OtlpReceiver _otlp;

    private Stack(DistributedApplication app, string runId, ChatStack.Tests.Support.OtlpReceiver otlp)
    {
        App = app;
        RunId = runId;
        _otlp = otlp;
    }

    public DistributedApplication App { get; }

    public string RunId { get; }

    public string PubSubHost { get; private set; } = "";

    public string BigQueryHost { get; private set; } = "";

    public Uri Endpoint(string resource) => App.GetEndpoint(resource, "http");

    /// <param name="localLimitsApi">
    /// A third chat API, the real one's twin (Firestore, dual write) but with its limits in its own memory
    /// (<c>Limits:Store=Memory</c>), so the shared limits' cost is a difference too.
    /// </param>
    public static async Task<Stack> StartAsync(int deltaDelayMs, int longAnswerSentences, bool localLimitsApi = false)
    {
        var runId = Guid.NewGuid().ToString("N");
        // The testing builder starts no dashboard, so the services' OTLP endpoint would refuse every export: each
        // service then threw ~40 exceptions a second and allocated ~17 MB/s retrying, on the cores being measured.
        // A receiver in the harness takes the exports, as a collector would in production.
        var otlp = await ChatStack.Tests.Support.OtlpReceiver.StartAsync();
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(ChatStack.Tests.Support.IsolatedAppHost.Args);
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning).AddFilter("ChatStack.AppHost.Resources", LogLevel.None)
            .AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None));
        builder.Resources.Remove(builder.Resources.Single(r => r.Name == "analytics-worker"));

        var chatApi = builder.Resources.OfType<ProjectResource>().Single(r => r.Name == ChatApi);
        var signingKey = builder.Resources.OfType<ParameterResource>().Single(p => p.Name == "chat-api-jwt-signing-key");
        // Same signing key as the real one, so one token serves both; no Google service at all.
        builder.AddProject(ChatApiMemory, chatApi.GetProjectMetadata().ProjectPath)
            .WithEnvironment("Identity__SigningKey", builder.CreateResourceBuilder(signingKey))
            .WithEnvironment("GOOGLE_CLOUD_PROJECT", ProjectId)
            .WithEnvironment("ENABLE_FIRESTORE_WRITE", "false")
            .WithEnvironment("ENABLE_DUAL_WRITE", "false")
            .WithHttpHealthCheck("/health");

        if (localLimitsApi)
        {
            IResourceBuilder<IResourceWithEndpoints> Emulator(string name) =>
                builder.CreateResourceBuilder(builder.Resources.OfType<IResourceWithEndpoints>().Single(r => r.Name == name));
            IResourceBuilder<ParameterResource> Parameter(string name) =>
                builder.CreateResourceBuilder(builder.Resources.OfType<ParameterResource>().Single(p => p.Name == name));
            builder.AddProject(ChatApiLocalLimits, chatApi.GetProjectMetadata().ProjectPath)
                .WithEnvironment("Identity__SigningKey", builder.CreateResourceBuilder(signingKey))
                .WithEnvironment("DualWrite__ContentHashKey", Parameter("chat-api-content-hash-key"))
                .WithGoogleCloudProject(Parameter("gcp-project-id"))
                .WithGoogleCloudEmulator(Emulator("pubsub"))
                .WithGoogleCloudEmulator(Emulator("firestore"))
                .WithEnvironment("Limits__Store", "Memory")
                .WithHttpHealthCheck("/health");
        }

        foreach (var project in builder.Resources.OfType<ProjectResource>())
        {
            builder.CreateResourceBuilder(project)
                .WithEnvironment(RunIdVariable, runId)
                .WithEnvironment("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
                .WithEnvironment("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.Endpoint.ToString().TrimEnd('/'))
                .WithEnvironment("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                // Aspire's run mode exports every second for the dashboard; deployed services keep the SDK's
                // defaults (metrics every 60 s, spans and logs every 5 s), and those are what is measured here.
                .WithEnvironment("OTEL_METRIC_EXPORT_INTERVAL", "60000")
                .WithEnvironment("OTEL_BSP_SCHEDULE_DELAY", "5000")
                .WithEnvironment("OTEL_BLRP_SCHEDULE_DELAY", "5000")
                .WithEnvironment("Chat__Offline__DeltaDelayMs", deltaDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .WithEnvironment("Chat__Offline__LongAnswerSentences", longAnswerSentences.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .WithEnvironment("Chat__MaxBudgetPerRequest", "1000000")
                .WithEnvironment("Logging__LogLevel__Default", "Warning")
                // The benchmark's one user makes far more requests than a person would.
                .WithEnvironment("Limits__RequestsPerWindow", "1000000")
                .WithEnvironment("Limits__TokensPerWindow", "2000000000");
        }

        foreach (var name in new[] { ChatApi, ChatApiMemory })
        {
            var api = builder.CreateResourceBuilder(builder.Resources.OfType<ProjectResource>().Single(r => r.Name == name));
            foreach (var (variable, value) in JitLog.Variables(name))
            {
                api.WithEnvironment(variable, value);
            }
        }

        var app = await builder.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await app.StartAsync(timeout.Token);
        var notifications = app.Services.GetRequiredService<ResourceNotificationService>();
        await Task.WhenAll(new[] { "pubsub", "firestore", "bigquery", ChatApi, ChatApiMemory }.Concat(localLimitsApi ? [ChatApiLocalLimits] : [])
            .Select(name => notifications.WaitForResourceHealthyAsync(name, timeout.Token))
            .Append(notifications.WaitForResourceAsync("provisioner", KnownResourceStates.Finished, timeout.Token)));

        var stack = new Stack(app, runId, otlp);
        stack.PubSubHost = await app.GetConnectionStringAsync("pubsub", timeout.Token) ?? throw new InvalidOperationException("pubsub has no connection string");
        var bigquery = app.GetEndpoint("bigquery", "http");
        stack.BigQueryHost = $"{bigquery.Host}:{bigquery.Port}";
        return stack;
    }

    public async ValueTask DisposeAsync()
    {
        await App.DisposeAsync();
        await _otlp.DisposeAsync();
        JitLog.Delete();
    }
}
