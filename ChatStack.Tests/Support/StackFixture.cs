using System.Diagnostics;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ChatStack.Tests.Support;

/// <summary>
/// The real AppHost, started once for every test in <see cref="StackCollection"/>: real emulators, real services.
/// Tests that need fresh state use a project id of their own (the emulators keep projects apart).
/// </summary>
public sealed class StackFixture : IAsyncLifetime
{
    public static readonly string[] HealthyResources = ["pubsub", "firestore", "bigquery", "analytics-worker", "chat-api"];

    /// <summary>The chat API lets this user start one chat per window (<c>Limits:Users</c>).</summary>
    public const string PageLimitedUser = "page-limited";

    /// <summary>The chat API's reconnect grace on this stack, in seconds.</summary>
    public const int ReconnectGraceSeconds = 2;

    public DistributedApplication App { get; private set; } = null!;

    /// <summary>From the start of the AppHost to every resource healthy (or finished, for the provisioner).</summary>
    public TimeSpan TimeToHealthy { get; private set; }

    /// <summary>Where every service of the stack exports its spans: the test's stand-in for the dashboard.</summary>
    public OtlpReceiver Otlp { get; private set; } = null!;

    public string PubSubHost { get; private set; } = "";

    public string FirestoreHost { get; private set; } = "";

    /// <summary>host:port of the BigQuery emulator, as services get it in BIGQUERY_EMULATOR_HOST.</summary>
    public string BigQueryHost { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var stopwatch = Stopwatch.StartNew();
        Otlp = await OtlpReceiver.StartAsync();
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);
        // The emulators log INFO to stderr, which would show as failures; the tests say what went wrong.
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning).AddFilter("ChatStack.AppHost.Resources", LogLevel.None));
        foreach (var project in builder.Resources.OfType<ProjectResource>())
        {
            // Without a dashboard to export to, each service would wait 10 s for OTLP at shutdown.
            builder.CreateResourceBuilder(project).WithEnvironment("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
                .WithEnvironment("OTEL_EXPORTER_OTLP_ENDPOINT", Otlp.Endpoint.ToString().TrimEnd('/'))
                .WithEnvironment("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                .WithEnvironment("OTEL_BSP_SCHEDULE_DELAY", "500");
        }

        // One user with a one-request window, so the page's browser tests can meet a real 429. A reconnect grace
        // shorter than the long answer (~8 s), so a test can see a run outlive its reader and then be cancelled.
        builder.CreateResourceBuilder(builder.Resources.OfType<ProjectResource>().Single(r => r.Name == "chat-api"))
            .WithEnvironment($"Limits__Users__{PageLimitedUser}__RequestsPerWindow", "1")
            .WithEnvironment("Chat__ReconnectGraceSeconds", ReconnectGraceSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));

        App = await builder.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await App.StartAsync(timeout.Token);
        var notifications = App.Services.GetRequiredService<ResourceNotificationService>();
        await Task.WhenAll(HealthyResources.Select(name => notifications.WaitForResourceHealthyAsync(name, timeout.Token))
            .Append(notifications.WaitForResourceAsync("provisioner", KnownResourceStates.Finished, timeout.Token)));
        TimeToHealthy = stopwatch.Elapsed;

        PubSubHost = await App.GetConnectionStringAsync("pubsub", timeout.Token) ?? throw new InvalidOperationException("pubsub has no connection string");
        FirestoreHost = await App.GetConnectionStringAsync("firestore", timeout.Token) ?? throw new InvalidOperationException("firestore has no connection string");
        var bigqueryEndpoint = App.GetEndpoint("bigquery", "http");
        BigQueryHost = $"{bigqueryEndpoint.Host}:{bigqueryEndpoint.Port}";
    }

    public async Task DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }

        if (Otlp is not null)
        {
            await Otlp.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class StackCollection : ICollectionFixture<StackFixture>
{
    public const string Name = "stack";
}
