using System.Net;
using System.Text.Json;
using ChatStack.ChatApi.Limits;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// The request rate limit counts what the user asked for, not what failed on our side: a chat that Firestore failed
/// before its stream started (503 <c>store-unavailable</c>, 500 <c>store-error</c>) gives its slot back, so a user
/// retrying through an outage is not locked out by 429s once it passes. So does any other failure on our side there
/// (a bug: a 500 <c>internal-error</c>); a client that leaves keeps its slot spent.
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
        // A CANCELLED sent by the server or a proxy, our token standing: unavailable, not a 500 logged as a bug.
        ("session-read", StatusCode.Cancelled, HttpStatusCode.ServiceUnavailable, "store-unavailable"),
        ("first-commit", StatusCode.Cancelled, HttpStatusCode.ServiceUnavailable, "store-unavailable"),
    ];

    [Fact]
    public async Task Chats_the_store_failed_before_their_stream_leave_the_whole_window_to_the_user()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, settings: TwoPerWindow);
        var client = await ChatApiClient.SignInAsync(host.Address, "outage-retrier");

        // Three times as many failures as the window holds, each where a chat meets the store before its stream.
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

        Assert.Equal(Failures.Length, faults.Injected);

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

    private static readonly Func<IMessage, bool> HistoryRead = request => request is ListDocumentsRequest { CollectionId: "messages" };

    /// <summary>
    /// Where a chat meets the store after admission and before its stream: the session read, the history read (the
    /// turn claimed), the first message's commit (the turn claimed and the quota held, inside the run).
    /// </summary>
    public static TheoryData<string> StoreCalls => ["session-read", "history-read", "first-commit"];

    private static Func<IMessage, bool> Call(string call) => call switch
    {
        "session-read" => FirestoreFaults.SessionRead,
        "history-read" => HistoryRead,
        _ => FirestoreFaults.MessageCommit("user"),
    };

    [Theory]
    [MemberData(nameof(StoreCalls))]
    public async Task A_chat_that_meets_a_bug_before_its_stream_answers_500_with_its_slot_given_back_and_leaves_nothing_held(string call)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults,
            b => b.Logging.AddProvider(new FakeLoggerProvider(logs)), TwoPerWindow);
        var user = $"bug-at-{call}";
        var client = await ChatApiClient.SignInAsync(host.Address, user);
        await client.ChatAsync(new { message = "hello" }); // one of the two slots
        var sessionId = client.LastSessionId!;
        var quota = await QuotaLeft(host, user);
        logs.Clear();
        // Not a gRPC status the store knows how to tell: what a bug on the way to Firestore throws.
        var bug = new InvalidOperationException($"a bug injected at the {call}");
        faults.Throw(Call(call), bug);

        using (var failed = await client.PostChatAsync(new { session_id = sessionId, message = "and again?" }))
        {
            var body = await failed.Content.ReadAsStringAsync();
            Assert.True(failed.StatusCode == HttpStatusCode.InternalServerError, $"{(int)failed.StatusCode} {body}");
            Assert.Equal("application/problem+json", failed.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(body).RootElement;
            Assert.Equal("internal-error", problem.GetProperty("code").GetString());
            Assert.DoesNotContain("injected", body);
            // The standing after the slot was given back: the priming chat's one, no more.
            Assert.Equal(("2", "1"), RateLimit(failed));
            Assert.NotEqual("(none)", HeaderOrNone(failed, "RateLimit-Reset"));
        }

        Assert.Equal(1, faults.Injected);
        // Logged once, with its stack, by the exception handler; and the one problem line of the answer.
        var withBug = logs.GetSnapshot().Where(r => ReferenceEquals(r.Exception, bug) || r.Message.Contains(bug.Message, StringComparison.Ordinal)).ToList();
        Assert.Equal(LogLevel.Error, Assert.Single(withBug).Level);
        Assert.Single(logs.GetSnapshot(), r => r.Category == "ChatStack.ChatApi.Problems" && r.Message.Contains("answered 500 internal-error", StringComparison.Ordinal));
        Assert.Equal(quota, await QuotaLeft(host, user)); // no hold left behind

        // Healed: the session takes its next message (no turn left claimed), on the slot given back; then the limit.
        faults.Heal();
        using (var ok = await client.PostChatAsync(new { session_id = sessionId, message = "and again?" }))
        {
            Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{(int)ok.StatusCode} {await ok.Content.ReadAsStringAsync()}");
            Assert.Equal(("2", "0"), RateLimit(ok));
            Assert.Equal("done", (await Sse.ReadAllAsync(ok))[^1].Event);
        }

        using var limited = await client.PostChatAsync(new { message = "hello" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
    }

    [Fact]
    public async Task A_client_that_leaves_before_its_stream_keeps_its_slot_spent_frees_the_session_and_logs_no_error()
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b =>
        {
            b.Logging.AddProvider(new FakeLoggerProvider(logs));
            b.Services.AddHttpContextAccessor();
        }, new Dictionary<string, string?>(TwoPerWindow) { ["Limits:RequestsPerWindow"] = "3" });
        const string User = "leaves-mid-read";
        var client = await ChatApiClient.SignInAsync(host.Address, User);
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;
        var quota = await QuotaLeft(host, User);
        logs.Clear();

        // The client hangs up while the history is read (the turn claimed); the read goes on once the server has
        // seen it go, so it meets the cancelled request as it would in production.
        using var leave = new CancellationTokenSource();
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var accessor = host.Services.GetRequiredService<IHttpContextAccessor>();
        faults.Before(HistoryRead, async () =>
        {
            var request = accessor.HttpContext!;
            request.Response.OnCompleted(() =>
            {
                ended.SetResult();
                return Task.CompletedTask;
            });
            var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var registration = request.RequestAborted.Register(() => aborted.SetResult());
            await leave.CancelAsync();
            await aborted.Task;
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PostChatAsync(new { session_id = sessionId, message = "still there?" }, leave.Token));
        await ended.Task; // the server is done with it

        // Not our failure: no error, no 500 logged for a client that left.
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
        Assert.Equal(quota, await QuotaLeft(host, User));

        // Its slot stays spent (the session and its history were read for it): one of three left, and the session free.
        using (var ok = await client.PostChatAsync(new { session_id = sessionId, message = "back" }))
        {
            Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{(int)ok.StatusCode} {await ok.Content.ReadAsStringAsync()}");
            Assert.Equal(("3", "0"), RateLimit(ok));
            Assert.Equal("done", (await Sse.ReadAllAsync(ok))[^1].Event);
        }
    }

    private static Task<long> QuotaLeft(ChatApiHost host, string user) => host.Services.GetRequiredService<UserLimiter>().TokensRemainingAsync(user, default);

    private static (string Limit, string Remaining) RateLimit(HttpResponseMessage response) =>
        (HeaderOrNone(response, "RateLimit-Limit"), HeaderOrNone(response, "RateLimit-Remaining"));

    private static string HeaderOrNone(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : "(none)";
}
