using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;

namespace ChatStack.Tests.Support;

/// <summary>
/// A project of its own on the stack's Pub/Sub and BigQuery emulators, for tests that run analytics workers against
/// it: provisioning, chat events to publish, and what reached the warehouse or the dead-letter subscription.
/// </summary>
public sealed class WorkerTestProject(StackFixture stack, string prefix) : IDisposable
{
    private EmulatorClients? _clients;

    public string Id { get; } = $"{prefix}-{Guid.NewGuid():N}"[..20];

    public Grpc.Net.Client.GrpcChannel Channel { get; } = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);

    public EmulatorClients Clients => _clients ??= new EmulatorClients(stack, Id);

    public IBigQueryClient BigQuery => Clients.BigQuery;

    public void Dispose()
    {
        _clients?.Dispose();
        Channel.Dispose();
    }

    /// <summary>A worker process on this project; short leases, so messages a stopped worker held come back within seconds.</summary>
    public Dictionary<string, string> WorkerEnvironment() => new()
    {
        ["GOOGLE_CLOUD_PROJECT"] = Id,
        ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
        ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
        ["Ingestion__AckDeadlineSeconds"] = "10",
    };

    /// <summary>Topics, subscriptions (with the local 1-4 s retry backoff) and <paramref name="dataset"/>.</summary>
    public async Task ProvisionAsync(string dataset = ResourceNames.Dataset) =>
        Assert.Equal(0, (await Clients.ProvisionAsync(["provision", "--dataset", dataset, "--retry-min-backoff-seconds", "1", "--retry-max-backoff-seconds", "4"])).ExitCode);

    /// <summary>Publishes <paramref name="count"/> assistant-message events over 50 sessions; their event ids.</summary>
    public async Task<List<string>> PublishAsync(int count)
    {
        var publisher = new Publisher.PublisherClient(Channel);
        var ids = new List<string>(count);
        foreach (var chunk in Enumerable.Range(0, count).Chunk(500))
        {
            var request = new PublishRequest { Topic = PubSubNames.Topic(Id, ResourceNames.ChatEventsTopic) };
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

    /// <summary>Rows of <c>chat_events</c>, and distinct events among them.</summary>
    public async Task<(long Rows, long Distinct)> CountAsync()
    {
        var response = await BigQuery.QueryAsync(new QueryRequest
        {
            Query = $"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM `{Id}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}`",
        });
        var row = BigQueryRows.Decode(response.Rows![0], response.Schema!);
        return ((long)row["n"]!, (long)row["d"]!);
    }

    public async Task<(long Rows, long Distinct)> WaitForAsync(Func<(long Rows, long Distinct), bool> done, TimeSpan timeout)
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

    /// <summary>Message ids in the dead-letter hold subscription, handed back for the next look.</summary>
    public async Task<List<string>> DeadLettersAsync()
    {
        var subscriber = new Subscriber.SubscriberClient(Channel);
        var subscription = PubSubNames.Subscription(Id, ResourceNames.DeadLetterSubscription);
        try
        {
            var pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 100 }, deadline: DateTime.UtcNow.AddSeconds(3));
            if (pulled.ReceivedMessages.Count > 0)
            {
                await subscriber.ModifyAckDeadlineAsync(new ModifyAckDeadlineRequest
                {
                    Subscription = subscription,
                    AckIds = { pulled.ReceivedMessages.Select(m => m.AckId) },
                    AckDeadlineSeconds = 0,
                });
            }

            return [.. pulled.ReceivedMessages.Select(m => m.Message.MessageId)];
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.DeadlineExceeded)
        {
            return [];
        }
    }
}
