using System.Diagnostics;
using System.Globalization;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Options;

namespace ChatStack.Bench.Pipeline;

/// <summary>
/// Ingestion: the analytics worker draining a backlog of chat events from the Pub/Sub emulator into the BigQuery
/// emulator, against the emulator's own publish-then-pull-and-ack rate for the same messages with the same number
/// of pull loops in the same run; then publish-to-row latency at a steady rate.
/// </summary>
internal static class IngestBench
{
    private const int PullLoops = 4; // the worker's default Ingestion:Streams

    public static async Task RunAsync(Stack stack, int events, int rate, int seconds)
    {
        using var channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
        var publisher = new Publisher.PublisherClient(channel);
        var subscriber = new Subscriber.SubscriberClient(channel);
        var bigQueryOptions = new BigQueryOptions { ProjectId = Stack.ProjectId, EmulatorHost = stack.BigQueryHost };
        using var bigQueryHttp = new HttpClient { BaseAddress = bigQueryOptions.BaseAddress };
        var bigQuery = new BigQueryClient(bigQueryHttp, Options.Create(bigQueryOptions));
        var run = Guid.NewGuid().ToString("N")[..8];

        // 1. The emulator alone: publish the backlog to a fresh subscription, then pull and ack it all.
        var rawTopic = PubSubNames.Topic(Stack.ProjectId, $"bench-raw-{run}");
        var rawSubscription = PubSubNames.Subscription(Stack.ProjectId, $"bench-raw-{run}");
        await publisher.CreateTopicAsync(new Topic { Name = rawTopic });
        await subscriber.CreateSubscriptionAsync(new Subscription { Name = rawSubscription, Topic = rawTopic, AckDeadlineSeconds = 60 });
        var rawPublish = await PublishAsync(publisher, rawTopic, Events($"raw-{run}", events, DateTimeOffset.UtcNow));
        var rawDrain = await DrainInChildAsync(stack.PubSubHost, rawSubscription, events);
        var rawRate = events / rawDrain.TotalSeconds;
        Console.WriteLine($"backlog of {events:N0} events published at {events / rawPublish.TotalSeconds:N0}/s");

        // 2. The worker on the same backlog: nobody reads chat-events-to-bq until it starts.
        var session = $"bench-{run}";
        await PublishAsync(publisher, PubSubNames.Topic(Stack.ProjectId, ResourceNames.ChatEventsTopic), Events(session, events, DateTimeOffset.UtcNow));
        using var worker = new WorkerProcess(new Dictionary<string, string>
        {
            ["GOOGLE_CLOUD_PROJECT"] = Stack.ProjectId,
            ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
            ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
            ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1000",
            ["Logging__LogLevel__Default"] = "Warning",
        });
        var started = Stopwatch.StartNew();
        await WaitForRowsAsync(bigQuery, session, events, TimeSpan.FromMinutes(5), worker);
        var wall = started.Elapsed;
        var span = await IngestedSpanAsync(bigQuery, session);
        var workerRate = events / span.TotalSeconds;

        Console.WriteLine();
        Console.WriteLine("| path | events | drain time | events/s | vs raw |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Console.WriteLine($"| Pub/Sub emulator raw pull + ack ({PullLoops} unary pull loops, own process) | {events:N0} | {rawDrain.TotalSeconds:F2} s | {rawRate:N0} | 1.00× |");
        Console.WriteLine($"| worker → BigQuery emulator, first row to last | {events:N0} | {span.TotalSeconds:F2} s | {workerRate:N0} | {workerRate / rawRate:F2}× |");
        Console.WriteLine($"| worker → BigQuery emulator, process start to last row | {events:N0} | {wall.TotalSeconds:F2} s | {events / wall.TotalSeconds:N0} | {events / wall.TotalSeconds / rawRate:F2}× |");
        Console.WriteLine();
        Console.WriteLine($"ingestion ratio (worker ÷ raw): {workerRate / rawRate:F2}× (goal ≥ 0.80×)");

        // 3. Publish-to-row latency at a steady rate, the worker running.
        var latencySession = $"lat-{run}";
        var total = rate * seconds;
        var tick = TimeSpan.FromMilliseconds(100);
        var perTick = Math.Max(1, rate / 10);
        var clock = Stopwatch.StartNew();
        var topic = PubSubNames.Topic(Stack.ProjectId, ResourceNames.ChatEventsTopic);
        var sent = 0;
        for (var i = 0; sent < total; i++)
        {
            var due = tick * i;
            if (clock.Elapsed < due)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            var batch = Events(latencySession, Math.Min(perTick, total - sent), DateTimeOffset.UtcNow, offset: sent);
            await PublishAsync(publisher, topic, batch);
            sent += batch.Count;
        }

        var achieved = sent / clock.Elapsed.TotalSeconds;
        await WaitForRowsAsync(bigQuery, latencySession, total, TimeSpan.FromMinutes(2), worker);
        var lags = await LagsAsync(bigQuery, latencySession);
        Console.WriteLine();
        Console.WriteLine($"publish-to-row at {achieved:N0} events/s for {seconds} s ({lags.Count:N0} rows; event_timestamp set at publish, ingested_at when the worker built the row):");
        Console.WriteLine($"  p50 {Percentile(lags, 50):F0} ms, p99 {Percentile(lags, 99):F0} ms, max {lags.Max():F0} ms (goal p99 ≤ 2000 ms)");
        await worker.StopAsync(TimeSpan.FromSeconds(30));
    }

    private static List<(byte[] Data, Dictionary<string, string> Attributes)> Events(string session, int count, DateTimeOffset at, int offset = 0) =>
        Enumerable.Range(offset, count).Select(i =>
        {
            var messageId = i.ToString("D9", CultureInfo.InvariantCulture);
            var chatEvent = new ChatEvent
            {
                EventId = ChatEventIds.ForEvent(session, messageId, ChatEventTypes.AssistantMessage),
                EventType = ChatEventTypes.AssistantMessage,
                SessionId = session,
                UserId = "bench-user",
                MessageId = messageId,
                Role = "assistant",
                ContentSha256 = "0000000000000000000000000000000000000000000000000000000000000000",
                ContentLength = 420,
                Model = "chatstack-offline-deterministic",
                PromptTokens = 120,
                CompletionTokens = 300,
                TotalTokens = 420,
                BudgetMax = 8000,
                BudgetRemaining = 7580,
                Phase = "finalize",
                FinishReason = "stop",
                EventTimestamp = at,
            };
            return (ChatEventMessages.Serialize(chatEvent), ChatEventMessages.Attributes(chatEvent, null));
        }).ToList();

    private static async Task<TimeSpan> PublishAsync(Publisher.PublisherClient publisher, string topic, List<(byte[] Data, Dictionary<string, string> Attributes)> messages)
    {
        var stopwatch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(messages.Chunk(500), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (chunk, ct) =>
        {
            var request = new PublishRequest { Topic = topic };
            foreach (var (data, attributes) in chunk)
            {
                var message = new PubsubMessage { Data = ByteString.CopyFrom(data) };
                message.Attributes.Add(attributes);
                request.Messages.Add(message);
            }

            await publisher.PublishAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct);
        });
        return stopwatch.Elapsed;
    }

    /// <summary>
    /// The emulator's best, measured in a process of its own like the worker: each loop has its own connection, pulls
    /// again as soon as a pull returns and acknowledges in the background, the way a client library does.
    /// </summary>
    private static async Task<TimeSpan> DrainInChildAsync(string pubSubHost, string subscription, int expected)
    {
        var start = new ProcessStartInfo("dotnet", [typeof(IngestBench).Assembly.Location, "raw-drain", pubSubHost, subscription,
            expected.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true };
        using var child = Process.Start(start)!;
        var seconds = await child.StandardOutput.ReadLineAsync();
        await child.WaitForExitAsync();
        return child.ExitCode == 0 && double.TryParse(seconds, CultureInfo.InvariantCulture, out var s)
            ? TimeSpan.FromSeconds(s)
            : throw new InvalidOperationException($"raw drain failed: {seconds}");
    }

    /// <summary>The child process: drains <paramref name="expected"/> messages and prints the seconds it took.</summary>
    public static async Task DrainAsync(string pubSubHost, string subscription, int expected)
    {
        var received = 0;
        var acks = new List<Task>();
        var channels = Enumerable.Range(0, PullLoops).Select(_ => GoogleCloudChannels.Create(pubSubHost, GoogleCloudChannels.PubSubEndpoint)).ToList();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(channels.Select(async channel =>
        {
            var subscriber = new Subscriber.SubscriberClient(channel);
            while (Volatile.Read(ref received) < expected)
            {
                var pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 1000 },
                    deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: timeout.Token);
                if (pulled.ReceivedMessages.Count == 0)
                {
                    continue;
                }

                Interlocked.Add(ref received, pulled.ReceivedMessages.Count);
                var ack = subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = subscription, AckIds = { pulled.ReceivedMessages.Select(m => m.AckId) } },
                    cancellationToken: timeout.Token).ResponseAsync;
                lock (acks)
                {
                    acks.Add(ack);
                }
            }
        }));
        await Task.WhenAll(acks);
        Console.WriteLine(stopwatch.Elapsed.TotalSeconds.ToString(CultureInfo.InvariantCulture));
        channels.ForEach(c => c.Dispose());
    }

    private static string Table => $"`{Stack.ProjectId}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}`";

    private static async Task WaitForRowsAsync(IBigQueryClient bigQuery, string session, int expected, TimeSpan limit, WorkerProcess worker)
    {
        var deadline = DateTime.UtcNow + limit;
        long count = 0;
        while (DateTime.UtcNow < deadline)
        {
            var response = await bigQuery.QueryAsync(new QueryRequest { Query = $"SELECT COUNT(DISTINCT event_id) AS n FROM {Table} WHERE session_id = '{session}'" });
            count = (long)BigQueryRows.Decode(response.Rows![0], response.Schema!)["n"]!;
            if (count >= expected)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{count} of {expected} rows after {limit}; worker log:\n{worker.Log}");
    }

    private static async Task<TimeSpan> IngestedSpanAsync(IBigQueryClient bigQuery, string session)
    {
        var response = await bigQuery.QueryAsync(new QueryRequest { Query = $"SELECT MIN(ingested_at) AS first, MAX(ingested_at) AS last FROM {Table} WHERE session_id = '{session}'" });
        var row = BigQueryRows.Decode(response.Rows![0], response.Schema!);
        return (DateTimeOffset)row["last"]! - (DateTimeOffset)row["first"]!;
    }

    private static async Task<List<double>> LagsAsync(IBigQueryClient bigQuery, string session)
    {
        var response = await bigQuery.QueryAsync(new QueryRequest { Query = $"SELECT event_timestamp, ingested_at FROM {Table} WHERE session_id = '{session}'" });
        return response.Rows!.Select(r => BigQueryRows.Decode(r, response.Schema!))
            .Select(r => ((DateTimeOffset)r["ingested_at"]! - (DateTimeOffset)r["event_timestamp"]!).TotalMilliseconds).ToList();
    }

    private static double Percentile(List<double> values, int percentile) => Stats.Percentile(values.Order().ToList(), percentile);
}
