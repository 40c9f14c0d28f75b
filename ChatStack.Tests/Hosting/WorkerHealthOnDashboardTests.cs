using System.Text.RegularExpressions;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Hosting.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace ChatStack.Tests.Hosting;

/// <summary>
/// The real worker, run by Aspire beside the real Pub/Sub emulator (not the whole stack), with a BigQuery that refuses
/// every connection: once its writes have failed for <c>Ingestion:MaxInsertBackoff</c>, the resource's health, as the
/// dashboard shows it, is Degraded and says why.
/// </summary>
public sealed class WorkerHealthOnDashboardTests
{
    private const string ProjectId = "health-test";

    [Fact]
    public async Task A_worker_whose_bigquery_writes_fail_is_degraded_on_the_dashboard_with_the_reason()
    {
        var builder = DistributedApplication.CreateBuilder(new DistributedApplicationOptions
        {
            DisableDashboard = true,
            // The AppHost's assembly tells Aspire where DCP is.
            AssemblyName = "ChatStack.AppHost",
        });
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning).AddFilter("ChatStack.AppHost.Resources", LogLevel.None));
        var pubsub = builder.AddPubSubEmulator("pubsub");
        var refusingBigQuery = $"127.0.0.1:{LocalServer.ClosedPort()}";
        var dll = DotnetProcess.BuiltApp("ChatStack.AnalyticsWorker");
        var worker = builder.AddExecutable("analytics-worker", "dotnet", Path.GetDirectoryName(dll)!, dll)
            .WithHttpEndpoint(name: "http");
        var endpoint = worker.GetEndpoint("http");
        worker.WithEnvironment("ASPNETCORE_URLS", ReferenceExpression.Create($"http://127.0.0.1:{endpoint.Property(EndpointProperty.TargetPort)}"))
            .WithEnvironment("DOTNET_ENVIRONMENT", "Development")
            .WithEnvironment(GoogleCloudEmulatorBuilderExtensions.ProjectVariable, ProjectId)
            .WithEnvironment(GoogleCloudEmulatorBuilderExtensions.BigQueryHostVariable, refusingBigQuery)
            .WithEnvironment("Ingestion__MaxInsertBackoff", "00:00:02")
            .WithGoogleCloudEmulator(pubsub)
            // Started once the test has made the subscription it pulls.
            .WithExplicitStart()
            .WithServiceHealthCheck();

        await using var app = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await app.StartAsync(timeout.Token);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("pubsub", timeout.Token);
        var pubsubHost = await app.GetConnectionStringAsync("pubsub", timeout.Token) ?? throw new InvalidOperationException("pubsub has no connection string");
        await PublishOneChatEventAsync(pubsubHost);

        await app.ResourceCommands.ExecuteCommandAsync("analytics-worker", KnownResourceCommands.StartCommand, timeout.Token);
        var degraded = await app.ResourceNotifications.WaitForResourceAsync("analytics-worker",
            e => e.Snapshot.HealthStatus == HealthStatus.Degraded, timeout.Token);

        var report = Assert.Single(degraded.Snapshot.HealthReports);
        Assert.Equal(HealthStatus.Degraded, report.Status);
        // The worker's own words, through its /health body (ServiceDefaults, asked by the check's variable).
        Assert.Matches(new Regex("bigquery-writes: Degraded: BigQuery writes have failed for .* Last error: .*(refused|127\\.0\\.0\\.1)"), report.Description);

        // Still a 200, so a probe (Cloud Run's) does not restart a worker that is riding the outage out.
        using var http = new HttpClient { BaseAddress = new Uri(endpoint.Url) };
        using var probe = await http.GetAsync("/health", timeout.Token);
        Assert.Equal(System.Net.HttpStatusCode.OK, probe.StatusCode);
        Assert.StartsWith("Degraded\n", await probe.Content.ReadAsStringAsync(timeout.Token));

        await app.StopAsync(timeout.Token);
    }

    /// <summary>The topic and the subscription the worker pulls, and one chat event for it to write.</summary>
    private static async Task PublishOneChatEventAsync(string pubsubHost)
    {
        using var channel = GoogleCloudChannels.Create(pubsubHost, GoogleCloudChannels.PubSubEndpoint);
        var publisher = new Publisher.PublisherClient(channel);
        var topic = PubSubNames.Topic(ProjectId, ResourceNames.ChatEventsTopic);
        await publisher.CreateTopicAsync(new Topic { Name = topic });
        await new Subscriber.SubscriberClient(channel).CreateSubscriptionAsync(new Subscription
        {
            Name = PubSubNames.Subscription(ProjectId, ResourceNames.ChatEventsSubscription),
            Topic = topic,
            AckDeadlineSeconds = 10,
        });

        var chatEvent = new ChatEvent
        {
            EventId = ChatEventIds.ForEvent("session-1", "m1", ChatEventTypes.AssistantMessage),
            EventType = ChatEventTypes.AssistantMessage,
            SessionId = "session-1",
            UserId = "user-1",
            MessageId = "m1",
            PromptTokens = 10,
            CompletionTokens = 5,
            TotalTokens = 15,
            EventTimestamp = DateTimeOffset.UtcNow,
        };
        await publisher.PublishAsync(new PublishRequest
        {
            Topic = topic,
            Messages = { new PubsubMessage { Data = ByteString.CopyFrom(ChatEventMessages.Serialize(chatEvent)), Attributes = { ChatEventMessages.Attributes(chatEvent, null) } } },
        });
    }
}
