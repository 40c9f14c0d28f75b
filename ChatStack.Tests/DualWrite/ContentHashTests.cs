using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Sessions;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.DualWrite;

/// <summary>
/// <c>content_sha256</c> is a keyed hash (HMAC-SHA256 under <c>DualWrite:ContentHashKey</c>): a plain SHA-256 of a short
/// message gave the message back to anyone who can read the warehouse, even after the user deleted the session.
/// </summary>
public sealed class ContentHashTests
{
    private const string Key = "a-content-hash-key-of-sufficient-length-0123456789";
    private const string SigningKey = "a-production-signing-key-of-sufficient-length-0123456789";

    // Nothing listens on either: the events stay in the in-memory outbox, where the test reads them.
    private const string NoFirestore = "127.0.0.1:9";

    private static string Hmac(string key, string text) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(text)));

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static ChatEvent Event(OutboxRecord record) => JsonSerializer.Deserialize<ChatEvent>(record.Data)!;

    [Fact]
    public async Task With_capture_off_a_message_event_carries_the_hmac_of_its_text_under_the_configured_key_and_not_its_sha256()
    {
        await using var host = await ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?>
        {
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["DualWrite:ContentHashKey"] = Key,
            ["Chat:Offline:DeltaDelayMs"] = "0",
        });
        var chat = await ChatApiClient.SignInAsync(host.Address, "hash-user");
        // The same short answer in two sessions: exactly what a dictionary attack on a plain hash recovers.
        await chat.ChatAsync(new { message = "yes" });
        var first = chat.LastSessionId!;
        await chat.ChatAsync(new { message = "yes" });
        var second = chat.LastSessionId!;

        var records = await host.Services.GetRequiredService<MemoryOutbox>().ReadAsync(1000, default);
        var events = records.Where(r => r.Attributes["event_type"] is ChatEventTypes.UserMessage or ChatEventTypes.AssistantMessage).Select(Event).ToList();
        var questions = events.Where(e => e.EventType == ChatEventTypes.UserMessage).ToList();
        Assert.Equal([first, second], questions.Select(e => e.SessionId));
        Assert.All(questions, e => Assert.Equal(Hmac(Key, "yes"), e.ContentSha256));
        Assert.NotEqual(Sha256("yes"), questions[0].ContentSha256);
        Assert.All(events, e => Assert.Null(e.Content));

        // Answers too: each event's value is the HMAC of the text stored for its message.
        foreach (var session in new[] { first, second })
        {
            var stored = (await chat.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray()
                .Where(m => m.GetProperty("role").GetString() != "tool")
                .ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("content").GetString()!);
            var ofSession = events.Where(e => e.SessionId == session).ToList();
            Assert.Equal(stored.Keys.Order(), ofSession.Select(e => e.MessageId!).Order());
            Assert.All(ofSession, e => Assert.Equal(Hmac(Key, stored[e.MessageId!]), e.ContentSha256));
        }
    }

    [Fact]
    public void Equal_texts_give_equal_values_and_another_key_or_text_another_value()
    {
        var session = new ChatSession { Id = "s1", UserId = "u1", Title = "t", Model = "m" };
        ChatMessageRecord Message(string id, string text) => new() { Id = id, Role = "user", Content = text, CreatedAt = DateTimeOffset.UnixEpoch };
        string HashOf(string key, ChatMessageRecord message) =>
            Event(new ChatEventOutbox(new DualWriteOptions(), new ContentHash(key)).RecordsFor(session, message, new TokenBudget(), 0).Single()).ContentSha256!;

        var first = HashOf(Key, Message("m1", "123456789"));
        Assert.Equal(Hmac(Key, "123456789"), first);
        Assert.NotEqual(Sha256("123456789"), first);
        Assert.Equal(first, HashOf(Key, Message("m2", "123456789")));
        Assert.NotEqual(first, HashOf(Key, Message("m3", "123456788")));
        Assert.NotEqual(first, HashOf(Key.Replace('a', 'b'), Message("m1", "123456789")));
    }

    [Theory]
    [InlineData(null, null, "Set DualWrite:ContentHashKey (environment DualWrite__ContentHashKey), a secret of at least 32 bytes")]
    [InlineData("", null, "Set DualWrite:ContentHashKey (environment DualWrite__ContentHashKey), a secret of at least 32 bytes")] // DualWrite__ContentHashKey=
    [InlineData(null, "true", "Set DualWrite:ContentHashKey")] // content capture on: still needed, so values stay comparable when it goes off
    [InlineData("too-short-a-key-0123456789", null, "DualWrite:ContentHashKey is 26 bytes; the content hash needs at least 32")]
    public async Task Outside_development_a_missing_or_short_content_hash_key_stops_start_up_naming_the_setting(string? key, string? capture, string message)
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?>
        {
            ["Identity:SigningKey"] = SigningKey,
            ["DualWrite:ContentHashKey"] = key,
            [ChatStack.Contracts.Telemetry.GenAiContentCapture.Variable] = capture,
        }, "Production"));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task A_key_is_needed_only_where_chat_events_are_published_and_in_development_the_process_makes_one()
    {
        // No events, no hash: production with the cold path off starts without a key.
        await using (await ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?>
        {
            ["Identity:SigningKey"] = SigningKey,
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_DUAL_WRITE"] = "false",
        }, "Production"))
        {
        }

        // Development without the AppHost: a key of the process's own, still keyed, never the plain hash.
        await using var host = await ChatApiHost.StartAsync(NoFirestore, new Dictionary<string, string?> { ["ENABLE_FIRESTORE_WRITE"] = "false", ["Chat:Offline:DeltaDelayMs"] = "0" });
        var chat = await ChatApiClient.SignInAsync(host.Address, "dev-hash-user");
        await chat.ChatAsync(new { message = "yes" });
        var question = (await host.Services.GetRequiredService<MemoryOutbox>().ReadAsync(1000, default))
            .Where(r => r.Attributes["event_type"] == ChatEventTypes.UserMessage).Select(Event).Single();
        Assert.Matches("^[0-9a-f]{64}$", question.ContentSha256);
        Assert.NotEqual(Sha256("yes"), question.ContentSha256);
    }
}
