using ChatStack.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.DualWrite;

public sealed class OutboxRelayLogTests
{
    /// <summary>
    /// With Pub/Sub unreachable the relay retries with backoff and says so once per outage, naming the step and the
    /// service that failed (the operator's first question: is Firestore down too?), while chats go on.
    /// </summary>
    [Fact]
    public async Task While_pubsub_is_down_the_relay_says_once_which_service_failed_and_chats_go_on()
    {
        var logs = new FakeLogCollector();
        // The in-memory outbox, so only Pub/Sub is involved; ChatApiHost points it at 127.0.0.1:1, where nothing listens.
        await using var api = await ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["Chat:Offline:DeltaDelayMs"] = "0",
        }, configure: b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(api.Address, "relay-logs");

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("done", (await client.ChatAsync(new { message = $"hello {i}" }))[^1].Event);
        }

        // The relay polls every second and backs off 1, 2, 4 s after failures: several attempts in 8 s.
        await Task.Delay(TimeSpan.FromSeconds(8));
        var warnings = logs.GetSnapshot().Where(r => r.Category == "ChatStack.ChatApi.DualWrite.OutboxRelay" && r.Level >= LogLevel.Warning).ToList();
        var warning = Assert.Single(warnings);
        Assert.StartsWith("Outbox relay cannot deliver: publishing to chat-events (Pub/Sub) failed (Unavailable: ", warning.Message);
    }
}
