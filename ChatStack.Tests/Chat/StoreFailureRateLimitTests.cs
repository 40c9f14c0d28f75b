using System.Net;
using System.Text.Json;
using ChatStack.Tests.Support;
using Grpc.Core;

namespace ChatStack.Tests.Chat;

/// <summary>
/// The request rate limit counts what the user asked for, not what failed on our side: a chat that Firestore failed
/// before its stream started (503 <c>store-unavailable</c>, 500 <c>store-error</c>) gives its slot back, so a user
/// retrying through an outage is not locked out by 429s once it passes.
/// </summary>
[Collection(StackCollection.Name)]
public class StoreFailureRateLimitTests(StackFixture stack)
{
    private static readonly Dictionary<string, string?> TwoPerWindow = new()
    {
        ["Limits:RequestsPerWindow"] = "2",
        ["Limits:RequestWindowSeconds"] = "600",
    };

    private static readonly (string Call, StatusCode Status, HttpStatusCode Answer, string Code)[] Failures =
    [
        // UNKNOWN is unavailable but not repeated: a 503 at once, without waiting out the retries.
        ("session-read", StatusCode.Unknown, HttpStatusCode.ServiceUnavailable, "store-unavailable"),
        ("session-read", StatusCode.PermissionDenied, HttpStatusCode.InternalServerError, "store-error"),
        ("first-commit", StatusCode.Unknown, HttpStatusCode.ServiceUnavailable, "store-unavailable"),
        ("first-commit", StatusCode.PermissionDenied, HttpStatusCode.InternalServerError, "store-error"),
    ];

    [Fact]
    public async Task Chats_the_store_failed_before_their_stream_leave_the_whole_window_to_the_user()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, settings: TwoPerWindow);
        var client = await ChatApiClient.SignInAsync(host.Address, "outage-retrier");

        // Twice as many failures as the window holds, each where a chat meets the store before its stream.
        foreach (var (call, status, expected, code) in Failures)
        {
            faults.Fail(call == "session-read" ? FirestoreFaults.SessionRead : FirestoreFaults.MessageCommit("user"), status);
            object chat = call == "session-read" ? new { session_id = "read-fails-0000", message = "hello?" } : new { message = "hello?" };
            using var failed = await client.PostChatAsync(chat);
            var body = await failed.Content.ReadAsStringAsync();
            Assert.True(failed.StatusCode == expected, $"{call} {status}: {(int)failed.StatusCode} {body}");
            Assert.Equal(code, JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
            // The headers the failure answers with (a 500 too) say it cost nothing.
            Assert.Equal(("2", "2"), RateLimit(failed));
        }

        Assert.Equal(4, faults.Injected);

        // Healed, the user has the whole window: two chats, then the limit.
        faults.Heal();
        for (var i = 0; i < 2; i++)
        {
            using var ok = await client.PostChatAsync(new { message = "hello" });
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal(("2", (1 - i).ToString()), RateLimit(ok));
            Assert.Equal("done", (await Sse.ReadAllAsync(ok))[^1].Event);
        }

        using var limited = await client.PostChatAsync(new { message = "hello" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
    }

    [Fact]
    public async Task A_chat_for_a_session_that_does_not_exist_still_costs_its_slot()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, settings: TwoPerWindow);
        var client = await ChatApiClient.SignInAsync(host.Address, "wrong-session-sender");

        // The client's mistake, and a store read spent on it: counted, as before.
        using var notFound = await client.PostChatAsync(new { session_id = "no-such-session-0000", message = "hello?" });

        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        Assert.Equal(("2", "1"), RateLimit(notFound));
    }

    private static (string Limit, string Remaining) RateLimit(HttpResponseMessage response) =>
        (HeaderOrNone(response, "RateLimit-Limit"), HeaderOrNone(response, "RateLimit-Remaining"));

    private static string HeaderOrNone(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : "(none)";
}
