using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;

namespace ChatStack.Tests.Ingestion;

/// <summary>
/// The AppHost's own analytics worker, fed through the real Pub/Sub emulator, writing the real BigQuery emulator.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class WorkerIngestionTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private const string Project = "chatstack-local";
    private readonly Grpc.Net.Client.GrpcChannel _channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
    private readonly EmulatorClients _clients = new(stack, Project);

    private IBigQueryClient BigQuery => _clients.BigQuery;

    public void Dispose()
    {
        _clients.Dispose();
        _channel.Dispose();
    }

    private static ChatEvent Message(string session, string messageId, string type, int prompt, int completion) => new()
    {
        EventId = ChatEventIds.ForEvent(session, messageId, type),
        EventType = type,
        SessionId = session,
        UserId = "user-1",
        MessageId = messageId,
        Role = type == ChatEventTypes.UserMessage ? "user" : "assistant",
        Model = "gpt-4o",
        PromptTokens = prompt,
        CompletionTokens = completion,
        TotalTokens = prompt + completion,
        BudgetMax = 4000,
        BudgetRemaining = 4000 - prompt - completion,
        Phase = "finalize",
        ContentSha256 = "00",
        ContentLength = 2,
        TraceId = "0af7651916cd43dd8448eb211c80319c",
        EventTimestamp = DateTimeOffset.UtcNow,
    };

    private async Task PublishAsync(params PubsubMessage[] messages)
    {
        var publisher = new Publisher.PublisherClient(_channel);
        await publisher.PublishAsync(new PublishRequest { Topic = PubSubNames.Topic(Project, ResourceNames.ChatEventsTopic), Messages = { messages } });
    }

    private static PubsubMessage ToMessage(ChatEvent e) => new()
    {
        Data = ByteString.CopyFrom(ChatEventMessages.Serialize(e)),
        Attributes = { ChatEventMessages.Attributes(e, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") },
    };

    private async Task<long> WaitForRowsAsync(string sql, long expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        long count;
        do
        {
            var response = await BigQuery.QueryAsync(new QueryRequest { Query = sql });
            count = (long)BigQueryRows.Decode(response.Rows![0], response.Schema!)["n"]!;
            if (count >= expected)
            {
                break;
            }

            await Task.Delay(250);
        }
        while (DateTime.UtcNow < deadline);
        return count;
    }

    [Fact]
    public async Task Published_chat_events_and_tool_invocations_land_in_bigquery_with_their_figures()
    {
        var session = $"s-{Guid.NewGuid():N}";
        var user = Message(session, "m1", ChatEventTypes.UserMessage, 12, 0);
        var answer = Message(session, "m2", ChatEventTypes.AssistantMessage, 120, 45);
        var tool = new ToolInvocation
        {
            InvocationId = ChatEventIds.ForToolInvocation(session, "m2", 0),
            SessionId = session,
            UserId = "user-1",
            ToolName = "calculator",
            Status = "ok",
            ArgumentTokens = 9,
            ResultTokens = 3,
            StartedAt = DateTimeOffset.UtcNow,
            EndedAt = DateTimeOffset.UtcNow.AddMilliseconds(12),
            DurationMs = 12,
        };
        var started = DateTime.UtcNow;
        await PublishAsync(ToMessage(user), ToMessage(answer), new PubsubMessage
        {
            Data = ByteString.CopyFrom(ChatEventMessages.Serialize(tool)),
            Attributes = { ChatEventMessages.Attributes(tool, null) },
        });

        var events = $"SELECT COUNT(*) AS n FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}` WHERE session_id = '{session}'";
        Assert.Equal(2, await WaitForRowsAsync(events, 2, TimeSpan.FromSeconds(30)));
        var tools = $"SELECT COUNT(*) AS n FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.ToolInvocationsTable}` WHERE session_id = '{session}'";
        Assert.Equal(1, await WaitForRowsAsync(tools, 1, TimeSpan.FromSeconds(30)));
        output.WriteLine($"publish to rows visible: {(DateTime.UtcNow - started).TotalMilliseconds:0} ms");

        var summary = await BigQuery.QueryAsync(new QueryRequest
        {
            Query = $"SELECT * FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.SessionsSummaryView}` WHERE session_id = '{session}'",
        });
        var row = BigQueryRows.Decode(Assert.Single(summary.Rows!), summary.Schema!);
        Assert.Equal(1L, row["user_messages"]);
        Assert.Equal(1L, row["assistant_messages"]);
        Assert.Equal(120L, row["prompt_tokens"]);
        Assert.Equal(45L, row["completion_tokens"]);
        Assert.Equal(1L, row["tool_calls"]);
    }

    [Fact]
    public async Task The_same_event_delivered_twice_is_one_row()
    {
        var session = $"s-{Guid.NewGuid():N}";
        var answer = Message(session, "m1", ChatEventTypes.AssistantMessage, 10, 5);
        await PublishAsync(ToMessage(answer));
        await PublishAsync(ToMessage(answer));
        var marker = Message(session, "m2", ChatEventTypes.UserMessage, 1, 0);
        await PublishAsync(ToMessage(marker));

        var sql = $"SELECT COUNT(*) AS n FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}` WHERE session_id = '{session}'";
        Assert.Equal(2, await WaitForRowsAsync(sql, 2, TimeSpan.FromSeconds(30)));
        await Task.Delay(1000); // time for a late duplicate to land, were it going to
        var perEvent = $"SELECT COUNT(*) AS n FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}` WHERE event_id = '{answer.EventId}'";
        Assert.Equal(1, await WaitForRowsAsync(perEvent, 1, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_poison_message_reaches_the_dead_letter_subscription_while_good_messages_keep_flowing()
    {
        var marker = Guid.NewGuid().ToString("N");
        await PublishAsync(new PubsubMessage
        {
            Data = ByteString.CopyFromUtf8($"not json {marker}"),
            Attributes = { [ChatEventMessages.EventTypeAttribute] = ChatEventTypes.AssistantMessage },
        });
        var session = $"s-{Guid.NewGuid():N}";
        await PublishAsync(ToMessage(Message(session, "m1", ChatEventTypes.UserMessage, 3, 0)));

        var sql = $"SELECT COUNT(*) AS n FROM `{Project}.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}` WHERE session_id = '{session}'";
        Assert.Equal(1, await WaitForRowsAsync(sql, 1, TimeSpan.FromSeconds(30)));

        var subscriber = new Subscriber.SubscriberClient(_channel);
        var deadLetters = PubSubNames.Subscription(Project, ResourceNames.DeadLetterSubscription);
        ReceivedMessage? found = null;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (found is null && DateTime.UtcNow < deadline)
        {
            PullResponse pulled;
            try
            {
                pulled = await subscriber.PullAsync(new PullRequest { Subscription = deadLetters, MaxMessages = 50 }, deadline: DateTime.UtcNow.AddSeconds(3));
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.DeadlineExceeded)
            {
                continue;
            }

            found = pulled.ReceivedMessages.FirstOrDefault(m => m.Message.Data.ToStringUtf8().Contains(marker, StringComparison.Ordinal));
            var others = pulled.ReceivedMessages.Where(m => m != found).Select(m => m.AckId).ToList();
            if (others.Count > 0)
            {
                await subscriber.ModifyAckDeadlineAsync(new ModifyAckDeadlineRequest { Subscription = deadLetters, AckIds = { others }, AckDeadlineSeconds = 0 });
            }
        }

        Assert.NotNull(found);
        Assert.Equal(ResourceNames.ChatEventsSubscription, found.Message.Attributes["CloudPubSubDeadLetterSourceSubscription"]);
        Assert.Equal("5", found.Message.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"]);
        await subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = deadLetters, AckIds = { found.AckId } });
    }
}
