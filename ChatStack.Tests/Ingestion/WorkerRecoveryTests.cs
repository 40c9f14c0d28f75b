using System.Text.RegularExpressions;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;

namespace ChatStack.Tests.Ingestion;

/// <summary>A worker of its own, on a project of its own, that the tests crash and stop.</summary>
[Collection(StackCollection.Name)]
public sealed class WorkerRecoveryTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private readonly string _project = $"wk-{Guid.NewGuid():N}"[..20];
    private readonly Grpc.Net.Client.GrpcChannel _channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
    private EmulatorClients? _clients;

    private EmulatorClients Clients => _clients ??= new EmulatorClients(stack, _project);

    private IBigQueryClient BigQuery => Clients.BigQuery;

    public void Dispose()
    {
        _clients?.Dispose();
        _channel.Dispose();
    }

    private Dictionary<string, string> WorkerEnvironment(string pullMode = "Auto") => new()
    {
        ["Ingestion__PullMode"] = pullMode,
        ["GOOGLE_CLOUD_PROJECT"] = _project,
        ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
        ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
        // Short leases so messages a crashed worker held come back within seconds.
        ["Ingestion__AckDeadlineSeconds"] = "10",
        ["Ingestion__BatchSize"] = "100",
    };

    private async Task ProvisionAsync() =>
        Assert.Equal(0, (await Clients.ProvisionAsync(["provision", "--retry-min-backoff-seconds", "1", "--retry-max-backoff-seconds", "4"])).ExitCode);

    private async Task<List<string>> PublishAsync(int count)
    {
        var publisher = new Publisher.PublisherClient(_channel);
        var ids = new List<string>(count);
        foreach (var chunk in Enumerable.Range(0, count).Chunk(500))
        {
            var request = new PublishRequest { Topic = PubSubNames.Topic(_project, ResourceNames.ChatEventsTopic) };
            foreach (var i in chunk)
            {
                var e = new ChatEvent
                {
                    EventId = ChatEventIds.ForEvent($"session-{i % 50}", $"m{i}", ChatEventTypes.AssistantMessage),
                    EventType = ChatEventTypes.AssistantMessage,
                    SessionId = $"session-{i % 50}",
                    UserId = "user-1",
                    MessageId = $"m{i}",
                    PromptTokens = 10,
                    CompletionTokens = 5,
                    TotalTokens = 15,
                    EventTimestamp = DateTimeOffset.UtcNow,
                };
                ids.Add(e.EventId);
                request.Messages.Add(new PubsubMessage { Data = ByteString.CopyFrom(ChatEventMessages.Serialize(e)), Attributes = { ChatEventMessages.Attributes(e, null) } });
            }

            await publisher.PublishAsync(request);
        }

        return ids;
    }

    private async Task<(long Rows, long Distinct)> CountAsync()
    {
        var response = await BigQuery.QueryAsync(new QueryRequest
        {
            Query = $"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM `{_project}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}`",
        });
        var row = BigQueryRows.Decode(response.Rows![0], response.Schema!);
        return ((long)row["n"]!, (long)row["d"]!);
    }

    private async Task<(long Rows, long Distinct)> WaitForAsync(Func<(long Rows, long Distinct), bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var counts = await CountAsync();
        while (!done(counts) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            counts = await CountAsync();
        }

        return counts;
    }

    /// <remarks>
    /// In the emulator's default unary-Pull mode: the emulator strands the messages of a StreamingPull client
    /// that died (real Pub/Sub redelivers them once their lease runs out).
    /// </remarks>
    [Fact]
    public async Task A_worker_killed_mid_stream_and_restarted_loses_nothing_and_counts_nothing_twice()
    {
        await ProvisionAsync();
        const int Events = 3000;
        await PublishAsync(Events);

        // Inserts through a slow link: at most ~100 rows per 100 ms, so the crash lands mid-stream however fast the
        // machine is (unthrottled, the local emulator took all 3000 rows between two polls of the count).
        await using var slowLink = new TcpGate(stack.BigQueryHost) { Latency = TimeSpan.FromMilliseconds(50) };
        var firstEnvironment = WorkerEnvironment();
        firstEnvironment["BIGQUERY_EMULATOR_HOST"] = slowLink.Address;
        using (var first = new WorkerProcess(firstEnvironment))
        {
            var partial = await WaitForAsync(c => c.Rows >= 300, TimeSpan.FromSeconds(120));
            first.Crash();
            output.WriteLine($"killed the worker with {partial.Rows} rows written");
            Assert.InRange(partial.Rows, 300, Events - 1);
        }

        using var second = new WorkerProcess(WorkerEnvironment());
        var final = await WaitForAsync(c => c.Distinct >= Events, TimeSpan.FromSeconds(180));
        await Task.Delay(TimeSpan.FromSeconds(12)); // one more lease period: any redelivery would have landed by now
        final = await CountAsync();
        output.WriteLine($"after restart: {final.Rows} rows, {final.Distinct} distinct events");
        Assert.Equal(Events, final.Distinct);
        Assert.Equal(Events, final.Rows);
    }

    [Theory]
    [InlineData("Streaming")]
    [InlineData("Unary")]
    public async Task A_stopped_worker_finishes_its_batch_and_hands_the_rest_back(string pullMode)
    {
        await ProvisionAsync();
        const int Events = 2000;
        await PublishAsync(Events);

        // Leases of two minutes, and a first worker that inserts through a slow link so that it still holds most of
        // the messages when it is stopped.
        await using var slowLink = new TcpGate(stack.BigQueryHost) { Latency = TimeSpan.FromMilliseconds(50) };
        var environment = WorkerEnvironment(pullMode);
        environment["Ingestion__AckDeadlineSeconds"] = "120";
        environment["BIGQUERY_EMULATOR_HOST"] = slowLink.Address;
        var worker = new WorkerProcess(environment);
        await WaitForAsync(c => c.Rows >= 200, TimeSpan.FromSeconds(120));
        var exitCode = await worker.StopAsync(TimeSpan.FromSeconds(30));
        var log = worker.Log;
        worker.Dispose();
        output.WriteLine(log);
        Assert.Equal(0, exitCode);
        var released = int.Parse(Regex.Match(log, @"released (\d+) unprocessed messages").Groups[1].Value);
        var written = (await CountAsync()).Rows;
        output.WriteLine($"stopped with {written} rows written and {released} messages released");
        Assert.InRange(released, 1, Events - (int)written);

        // Released messages are redelivered at once, not after their lease: a new worker finishes well within it.
        environment["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost;
        using var second = new WorkerProcess(environment);
        var final = await WaitForAsync(c => c.Distinct >= Events, TimeSpan.FromSeconds(60));
        Assert.Equal(Events, final.Distinct);
        Assert.Equal(Events, final.Rows);
    }

    [Fact]
    public async Task With_bigquery_writes_off_the_worker_leaves_events_in_the_subscription()
    {
        await ProvisionAsync();
        await PublishAsync(50);
        var environment = WorkerEnvironment();
        environment["ENABLE_BQ_WRITE"] = "false";

        var worker = new WorkerProcess(environment);
        await Task.Delay(TimeSpan.FromSeconds(5));
        var exitCode = await worker.StopAsync(TimeSpan.FromSeconds(30));
        var log = worker.Log;
        worker.Dispose();

        Assert.Equal(0, exitCode);
        Assert.Contains("BigQuery writes are off", log);
        Assert.Equal(0, (await CountAsync()).Rows);
        var subscriber = new Subscriber.SubscriberClient(_channel);
        var waiting = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (waiting.Count < 50 && DateTime.UtcNow < deadline)
        {
            try
            {
                var pulled = await subscriber.PullAsync(new PullRequest
                {
                    Subscription = PubSubNames.Subscription(_project, ResourceNames.ChatEventsSubscription),
                    MaxMessages = 100,
                }, deadline: DateTime.UtcNow.AddSeconds(3));
                waiting.UnionWith(pulled.ReceivedMessages.Select(m => m.Message.MessageId));
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.DeadlineExceeded)
            {
            }
        }

        Assert.Equal(50, waiting.Count);
    }
}
