using System.Net;
using System.Text.Json;
using ChatStack.ChatApi.DualWrite;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.DualWrite;

/// <summary><c>ENABLE_FIRESTORE_WRITE=false</c>: no Firestore at all, sessions in memory, events still reach the real Pub/Sub.</summary>
[Collection(StackCollection.Name)]
public sealed class FirestoreOffTests(StackFixture stack)
{
    // Nothing listens here: any Firestore call would fail the chat.
    private const string NoFirestore = "127.0.0.1:9";

    [Fact]
    public async Task With_firestore_writes_off_chats_keep_their_context_in_memory_and_every_event_reaches_pubsub()
    {
        var project = $"fsoff-{Guid.NewGuid():N}"[..20];
        using var clients = new EmulatorClients(stack, project);
        Assert.Equal(0, (await clients.ProvisionAsync(["provision"])).ExitCode);

        await using var api = await ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?>
        {
            ["GOOGLE_CLOUD_PROJECT"] = project,
            ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
            ["ENABLE_FIRESTORE_WRITE"] = "false",
        });
        var chat = await ChatApiClient.SignInAsync(api.Address, "memory-user");
        Assert.Contains(await chat.ChatAsync(new { message = "Hello there" }), e => e.Event == "done");
        var session = chat.LastSessionId!;
        Assert.Contains(await chat.ChatAsync(new { session_id = session, message = "And again" }), e => e.Event == "done");

        Assert.Equal(["user", "assistant", "user", "assistant"],
            (await chat.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await chat.Http.GetAsync("/health")).StatusCode);

        var types = await PullSessionEventsAsync(project, session, expected: 4);
        Assert.Equal(["assistant_message", "assistant_message", "user_message", "user_message"], types);
    }

    [Fact]
    public async Task With_firestore_writes_off_and_pubsub_down_a_full_memory_outbox_turns_new_chats_away_and_loses_nothing()
    {
        var project = $"fsgate-{Guid.NewGuid():N}"[..20];
        using var clients = new EmulatorClients(stack, project);
        Assert.Equal(0, (await clients.ProvisionAsync(["provision"])).ExitCode);
        await using var gate = new TcpGate(stack.PubSubHost);
        gate.Shut();

        await using var api = await ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?>
        {
            ["GOOGLE_CLOUD_PROJECT"] = project,
            ["PUBSUB_EMULATOR_HOST"] = gate.Address,
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["DualWrite:MemoryOutboxCapacity"] = "3",
        });
        var outbox = api.Services.GetRequiredService<MemoryOutbox>();
        var chat = await ChatApiClient.SignInAsync(api.Address, "gate-user");

        // Pub/Sub down: chats go on while the outbox has room (2 events each).
        await chat.ChatAsync(new { message = "Hello there" });
        var session = chat.LastSessionId!;
        await chat.ChatAsync(new { session_id = session, message = "And again" });
        Assert.Equal(4, outbox.Count);

        // Full: the next chat is refused before anything is spent, and nothing pending is dropped.
        using (var refused = await chat.PostChatAsync(new { session_id = session, message = "Once more" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(10), refused.Headers.RetryAfter?.Delta);
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("outbox-full", problem.GetProperty("code").GetString());
        }

        Assert.Equal(4, outbox.Count);

        // Pub/Sub back: the outbox drains, every event arrives, and chats are accepted again.
        gate.Open();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (outbox.Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Equal(0, outbox.Count);
        Assert.Contains(await chat.ChatAsync(new { session_id = session, message = "Once more" }), e => e.Event == "done");
        var types = await PullSessionEventsAsync(project, session, expected: 6);
        Assert.Equal(3, types.Count(t => t == ChatEventTypes.UserMessage));
        Assert.Equal(3, types.Count(t => t == ChatEventTypes.AssistantMessage));
    }

    private async Task<List<string>> PullSessionEventsAsync(string project, string session, int expected)
    {
        using var channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
        var subscriber = new Subscriber.SubscriberClient(channel);
        var subscription = PubSubNames.Subscription(project, ResourceNames.ChatEventsSubscription);
        var types = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (types.Count < expected && DateTime.UtcNow < deadline)
        {
            var pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 100 }, deadline: DateTime.UtcNow.AddSeconds(10));
            types.AddRange(pulled.ReceivedMessages
                .Where(m => m.Message.Data.ToStringUtf8().Contains(session, StringComparison.Ordinal))
                .Select(m => m.Message.Attributes["event_type"]));
            if (pulled.ReceivedMessages.Count > 0)
            {
                await subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = subscription, AckIds = { pulled.ReceivedMessages.Select(m => m.AckId) } });
            }
        }

        return types.Order().ToList();
    }
}

/// <summary>Every storage path off: the API needs no Google service at all and still chats.</summary>
public sealed class AllStorageOffTests
{
    [Theory]
    [InlineData("ENABLE_DUAL_WRITE")]
    [InlineData("ENABLE_PUBSUB")]
    public async Task With_firestore_writes_and_the_cold_path_off_the_api_chats_with_no_google_service_reachable(string coldPathFlag)
    {
        await using var api = await ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:9",
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            [coldPathFlag] = "false",
        });
        var chat = await ChatApiClient.SignInAsync(api.Address, "offline-user");
        Assert.Contains(await chat.ChatAsync(new { message = "Hello there" }), e => e.Event == "done");
        Assert.Equal(2, (await chat.GetJsonAsync($"/api/sessions/{chat.LastSessionId}/messages")).GetArrayLength());
        Assert.Equal(HttpStatusCode.OK, (await chat.Http.GetAsync("/health")).StatusCode);
        Assert.Null(api.Services.GetService<ChatEventPublisher>());
    }
}
