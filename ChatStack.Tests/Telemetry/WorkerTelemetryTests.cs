using System.Diagnostics;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Contracts.Telemetry;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;

namespace ChatStack.Tests.Telemetry;

/// <summary>The analytics worker in process, wired as its Program.cs wires it, against the stack's Pub/Sub and BigQuery.</summary>
[Collection(StackCollection.Name)]
public sealed class WorkerTelemetryTests(StackFixture stack)
{
    [Fact]
    public async Task A_message_with_a_traceparent_is_processed_and_inserted_in_that_trace()
    {
        using var sampler = new SamplerView(ChatStackTelemetry.AnalyticsWorker);
        await using var worker = await WorkerHost.StartAsync(stack);
        var traceId = ActivityTraceId.CreateRandom();
        var publisher = ActivitySpanId.CreateRandom();
        var session = $"s-{Guid.NewGuid():N}";
        var chatEvent = Event(session, "m1");
        await worker.PublishAsync(new PubsubMessage
        {
            Data = ByteString.CopyFrom(ChatEventMessages.Serialize(chatEvent)),
            Attributes = { ChatEventMessages.Attributes(chatEvent, $"00-{traceId}-{publisher}-01") },
        });

        var process = await worker.Telemetry.WaitForSpanAsync(s => s.TraceId == traceId && s.DisplayName == "process chat-events", TimeSpan.FromSeconds(30));
        Assert.Equal(publisher, process.ParentSpanId);
        Assert.Equal(ActivityKind.Consumer, process.Kind);
        Assert.Equal(MessagingAttributes.SystemPubSub, process.GetTagItem(MessagingAttributes.System));
        // The GCP Pub/Sub conventions: a required operation name, the subscription as such, no batch count for one message.
        Assert.Equal("process", process.GetTagItem(MessagingAttributes.OperationName));
        Assert.Equal($"projects/{worker.Project}/subscriptions/{ResourceNames.ChatEventsSubscription}", process.GetTagItem(MessagingAttributes.SubscriptionName));
        Assert.Null(process.GetTagItem(MessagingAttributes.BatchMessageCount));
        Assert.Equal(1, process.GetTagItem("chatstack.worker.acked"));
        var insert = Assert.Single(worker.Telemetry.Spans, s => s.TraceId == traceId && s.DisplayName == $"insertAll {ResourceNames.ChatEventsTable}");
        Assert.Equal(process.SpanId, insert.ParentSpanId);
        Assert.Equal(DbAttributes.BigQuery, insert.GetTagItem(DbAttributes.SystemName));

        // The batch span is a root of its own, linked to the turn; the real insertAll HTTP call is under it.
        var batch = Assert.Single(worker.Telemetry.Spans, s => s.DisplayName == "process chat-events batch" && s.Links.Any(l => l.Context.TraceId == traceId));
        Assert.Equal(default, batch.ParentSpanId);
        Assert.Contains(insert.Links, l => l.Context.SpanId == batch.SpanId);
        Assert.Contains(worker.Telemetry.Spans, s => s.ParentSpanId == batch.SpanId && s.Kind == ActivityKind.Client && s.Source.Name.Contains("Http"));

        // A sampler sees the messaging and database attributes when each span starts, not only once it has ended.
        var created = sampler.Creations.Where(c => c.Concerns(traceId)).ToList();
        Assert.Equal(3, created.Count);
        Assert.All(created.Where(c => c.Name.StartsWith("process ")), c =>
        {
            Assert.Equal(MessagingAttributes.SystemPubSub, c.Tags[MessagingAttributes.System]);
            Assert.Equal(ResourceNames.ChatEventsTopic, c.Tags[MessagingAttributes.DestinationName]);
            Assert.Equal(process.GetTagItem(MessagingAttributes.SubscriptionName), c.Tags[MessagingAttributes.SubscriptionName]);
            Assert.Equal("process", c.Tags[MessagingAttributes.OperationType]);
            Assert.Equal("process", c.Tags[MessagingAttributes.OperationName]);
        });
        Assert.Equal(process.GetTagItem(MessagingAttributes.MessageId), Assert.Single(created, c => c.Name == process.DisplayName).Tags[MessagingAttributes.MessageId]);
        var insertCreated = Assert.Single(created, c => c.Name == insert.DisplayName);
        Assert.Equal(DbAttributes.BigQuery, insertCreated.Tags[DbAttributes.SystemName]);
        Assert.Equal(ResourceNames.ChatEventsTable, insertCreated.Tags[DbAttributes.CollectionName]);
        Assert.DoesNotContain(DbAttributes.BatchSize, insertCreated.Tags.Keys); // one row is no batch
        Assert.Null(insert.GetTagItem(DbAttributes.BatchSize));

        var metrics = worker.Telemetry.Metrics(worker.Services);
        var rows = metrics.Last(m => m.Name == "chatstack.worker.rows_written");
        Assert.Equal(1, rows.MetricPoints.Sum(p => p.GetSumLong()));
        var lag = metrics.Last(m => m.Name == "chatstack.worker.ingestion_lag");
        Assert.Equal("s", lag.Unit);
        Assert.Equal(1, lag.MetricPoints.Sum(p => p.GetHistogramCount()));
    }

    [Fact]
    public async Task Rows_of_one_turn_written_in_one_insertAll_are_a_batch_from_the_start_of_its_spans()
    {
        using var sampler = new SamplerView(ChatStackTelemetry.AnalyticsWorker);
        // A long batch window, so both messages of one publish land in one batch however busy the machine is.
        await using var worker = await WorkerHost.StartAsync(stack, new() { ["Ingestion:BatchLatency"] = "00:00:03" });
        var traceId = ActivityTraceId.CreateRandom();
        var session = $"s-{Guid.NewGuid():N}";
        var events = new[] { Event(session, "m1"), Event(session, "m2") };
        await worker.PublishAsync([.. events.Select(e => new PubsubMessage
        {
            Data = ByteString.CopyFrom(ChatEventMessages.Serialize(e)),
            Attributes = { ChatEventMessages.Attributes(e, $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01") },
        })]);

        var insert = await worker.Telemetry.WaitForSpanAsync(s => s.TraceId == traceId && s.DisplayName == $"insertAll {ResourceNames.ChatEventsTable}", TimeSpan.FromSeconds(30));
        Assert.Equal(2, insert.GetTagItem(DbAttributes.BatchSize));
        Assert.Equal(2, insert.GetTagItem("chatstack.worker.turn_rows"));
        var created = sampler.Creations.Where(c => c.Concerns(traceId)).ToList();
        Assert.Equal(2, Assert.Single(created, c => c.Name == insert.DisplayName).Tags[DbAttributes.BatchSize]);
        Assert.All(created.Where(c => c.Name.StartsWith("process ")), c => Assert.Equal(2, c.Tags[MessagingAttributes.BatchMessageCount]));
        Assert.Equal(2, created.Count(c => c.Name.StartsWith("process ")));
    }

    [Fact]
    public async Task A_message_nacked_on_its_last_delivery_attempt_is_counted_as_dead_lettered()
    {
        await using var worker = await WorkerHost.StartAsync(stack);
        await worker.PublishAsync(new PubsubMessage { Data = ByteString.CopyFromUtf8("not json"), Attributes = { [ChatEventMessages.EventTypeAttribute] = ChatEventTypes.UserMessage } });

        // Five deliveries, 1–4 s apart (the provisioned local backoff), each nacked as malformed.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long deadLettered = 0;
        while (deadLettered == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            deadLettered = worker.Telemetry.Metrics(worker.Services).LastOrDefault(m => m.Name == "chatstack.worker.dead_lettered")?.MetricPoints.Sum(p => p.GetSumLong()) ?? 0;
        }

        Assert.Equal(1, deadLettered);
        var malformed = worker.Telemetry.Metrics(worker.Services).Last(m => m.Name == "chatstack.worker.malformed_messages");
        Assert.Equal(ResourceNames.MaxDeliveryAttempts, malformed.MetricPoints.Sum(p => p.GetSumLong()));
    }

    private static ChatEvent Event(string session, string messageId) => new()
    {
        EventId = ChatEventIds.ForEvent(session, messageId, ChatEventTypes.UserMessage),
        EventType = ChatEventTypes.UserMessage,
        SessionId = session,
        UserId = "user-1",
        MessageId = messageId,
        Role = "user",
        PromptTokens = 7,
        TotalTokens = 7,
        EventTimestamp = DateTimeOffset.UtcNow,
    };

    /// <summary>A worker on a project of its own, provisioned with the local 1–4 s retry backoff.</summary>
    private sealed class WorkerHost : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly Grpc.Net.Client.GrpcChannel _channel;
        private readonly string _project;

        public string Project => _project;

        private WorkerHost(WebApplication app, Grpc.Net.Client.GrpcChannel channel, string project, TelemetryCapture telemetry)
        {
            _app = app;
            _channel = channel;
            _project = project;
            Telemetry = telemetry;
        }

        public TelemetryCapture Telemetry { get; }

        public IServiceProvider Services => _app.Services;

        public static async Task<WorkerHost> StartAsync(StackFixture stack, Dictionary<string, string?>? settings = null)
        {
            var project = $"wt-{Guid.NewGuid():N}"[..20];
            using (var clients = new EmulatorClients(stack, project))
            {
                Assert.Equal(0, (await clients.ProvisionAsync(["provision", "--retry-min-backoff-seconds", "1", "--retry-max-backoff-seconds", "4"])).ExitCode);
            }

            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "ChatStack.AnalyticsWorker", EnvironmentName = "Development" });
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["GOOGLE_CLOUD_PROJECT"] = project,
                ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
                ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "",
                ["Logging:LogLevel:Default"] = "Warning",
            });
            builder.Configuration.AddInMemoryCollection(settings ?? []);
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var telemetry = new TelemetryCapture();
            builder.AddBasicServiceDefaults();
            builder.AddChatEventIngestion();
            telemetry.AddTo(builder);
            var app = builder.Build();
            await app.StartAsync();
            return new WorkerHost(app, GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint), project, telemetry);
        }

        public async Task PublishAsync(params PubsubMessage[] messages) =>
            await new Publisher.PublisherClient(_channel).PublishAsync(new PublishRequest
            {
                Topic = PubSubNames.Topic(_project, ResourceNames.ChatEventsTopic),
                Messages = { messages },
            });

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _channel.Dispose();
        }
    }
}
