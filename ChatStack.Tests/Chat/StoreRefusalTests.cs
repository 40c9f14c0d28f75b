using System.Net;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Limits;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// Firestore refusing a call for good (a service account without permission, a database that does not exist) before a
/// chat's stream starts, or in a session endpoint: a 500 <c>store-error</c> problem the client can read, one log line
/// with Firestore's words for the operator, and nothing left behind (no busy session, no held quota, no half a session).
/// </summary>
[Collection(StackCollection.Name)]
public class StoreRefusalTests(StackFixture stack)
{
    // Firestore's words name the project: the operator's, not the client's.
    private const string FirestoreSays = "Missing or insufficient permissions for projects/secret-project-42.";

    // What real Firestore answers to every call when the configured database was never created (or is misnamed).
    private const string NoDatabase = "The database (default) does not exist for project secret-project-42 Please visit https://console.cloud.google.com/datastore/setup?project=secret-project-42 to add a Cloud Datastore or Cloud Firestore database.";

    private static readonly Func<IMessage, bool> SessionRead = FirestoreFaults.SessionRead;
    private static readonly Func<IMessage, bool> MessagesListed = request => request is ListDocumentsRequest { CollectionId: "messages" };

    [Theory]
    [InlineData("session")]
    [InlineData("history")]
    public async Task A_chat_whose_session_read_is_refused_answers_store_error_and_leaves_the_session_free(string read)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, $"denied-{read}-reader");
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;
        var quota = await QuotaLeft(host, "denied-" + read + "-reader");
        logs.Clear();
        // The history is read after the turn is claimed: a refusal there must give the claim back.
        faults.Fail(read == "session" ? SessionRead : MessagesListed, StatusCode.PermissionDenied, detail: FirestoreSays);

        using (var refused = await client.PostChatAsync(new { session_id = sessionId, message = "and again?" }))
        {
            await AssertStoreErrorAsync(host, client, refused);
        }

        Assert.Equal(1, faults.Injected); // a refusal is not retried
        AssertLoggedOnce(logs, "PermissionDenied");
        Assert.Equal(quota, await QuotaLeft(host, "denied-" + read + "-reader"));

        // Not busy: a 409 turn-in-progress would make this throw.
        faults.Heal();
        Assert.Equal("done", (await client.ChatAsync(new { session_id = sessionId, message = "and again?" }))[^1].Event);
        Assert.Equal(4, (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_chat_whose_first_message_commit_is_refused_answers_store_error_and_keeps_nothing(bool newSession)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var user = newSession ? "denied-new-chat" : "denied-next-turn";
        var client = await ChatApiClient.SignInAsync(host.Address, user);
        string? sessionId = null;
        if (!newSession)
        {
            await client.ChatAsync(new { message = "hello" });
            sessionId = client.LastSessionId;
        }

        var quota = await QuotaLeft(host, user);
        logs.Clear();
        faults.Fail(FirestoreFaults.MessageCommit("user"), StatusCode.PermissionDenied, detail: FirestoreSays);

        // The turn was claimed and the quota held before this commit: both must be given back.
        object chat = sessionId is null ? new { message = "keep this?" } : new { session_id = sessionId, message = "keep this?" };
        using (var refused = await client.PostChatAsync(chat))
        {
            await AssertStoreErrorAsync(host, client, refused);
        }

        Assert.Equal(1, faults.Injected);
        AssertLoggedOnce(logs, "PermissionDenied");
        Assert.Equal(quota, await QuotaLeft(host, user));
        faults.Heal();
        var sessions = (await client.GetJsonAsync("/api/sessions")).GetProperty("sessions");
        Assert.Equal(newSession ? 0 : 1, sessions.GetArrayLength()); // no session without its first message
        if (sessionId is not null)
        {
            Assert.Equal(2, (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength());
        }

        var events = await client.ChatAsync(chat);
        Assert.Equal("done", events[^1].Event);
        Assert.Equal(newSession ? 2 : 4, (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).GetArrayLength());
    }

    [Theory]
    [InlineData("GET", "/api/sessions", "session-query", StatusCode.PermissionDenied)]
    [InlineData("GET", "/api/sessions/{id}", "session-read", StatusCode.PermissionDenied)]
    [InlineData("GET", "/api/sessions/{id}/messages", "messages-query", StatusCode.NotFound)]
    [InlineData("GET", "/api/sessions/{id}/messages?limit=10", "messages-query", StatusCode.InvalidArgument)]
    [InlineData("PATCH", "/api/sessions/{id}", "commit", StatusCode.PermissionDenied)]
    [InlineData("DELETE", "/api/sessions/{id}", "messages-list", StatusCode.FailedPrecondition)]
    public async Task A_session_endpoint_whose_store_call_is_refused_answers_store_error(string method, string path, string call, StatusCode status)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "denied-endpoint-user");
        await client.ChatAsync(new { message = "hello" });
        path = path.Replace("{id}", client.LastSessionId, StringComparison.Ordinal);
        logs.Clear();
        faults.Fail(call switch
        {
            "session-query" => request => request is RunQueryRequest { StructuredQuery.From: [{ CollectionId: "sessions" }] },
            "session-read" => SessionRead,
            "messages-list" => MessagesListed,
            "messages-query" => request => request is RunQueryRequest { StructuredQuery.From: [{ CollectionId: "messages" }] },
            _ => TitleCommit,
        }, status, detail: FirestoreSays);

        using (var refused = await client.Http.SendAsync(Request(method, path)))
        {
            await AssertStoreErrorAsync(host, client, refused);
        }

        Assert.Equal(1, faults.Injected);
        AssertLoggedOnce(logs, status.ToString());

        // Nothing held: healed, the same request passes (a delete's claim on the session was given back).
        faults.Heal();
        using var healed = await client.Http.SendAsync(Request(method, path));
        Assert.True(healed.IsSuccessStatusCode, $"{method} {path}: {(int)healed.StatusCode} {await healed.Content.ReadAsStringAsync()}");
    }

    /// <summary>
    /// Firestore answers NOT_FOUND to every call when the database does not exist: that is the deployment's fault, told
    /// as one, not as a session that does not exist (which a client would take as "deleted" and drop).
    /// </summary>
    [Theory]
    [InlineData("GET", "/api/sessions/{id}")]
    [InlineData("PATCH", "/api/sessions/{id}")]
    [InlineData("GET", "/api/sessions/{id}/messages")]
    [InlineData("DELETE", "/api/sessions/{id}")]
    [InlineData("POST", "/api/chat")]
    public async Task A_missing_database_is_a_store_error_not_a_missing_session(string method, string path)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "no-database-user");
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;
        path = path.Replace("{id}", sessionId, StringComparison.Ordinal);
        logs.Clear();
        // Every call the request makes; the outbox relay's background poll is left alone, so what is counted and
        // logged here is the request's.
        faults.Fail(request => request is not RunQueryRequest { StructuredQuery.From: [{ CollectionId: "outbox" }] }, StatusCode.NotFound,
            times: int.MaxValue, detail: NoDatabase);

        using (var refused = await client.Http.SendAsync(Request(method, path, sessionId)))
        {
            await AssertStoreErrorAsync(host, client, refused);
        }

        Assert.Equal(1, faults.Injected); // the session read: the first call, and not retried
        AssertLoggedOnce(logs, "NotFound", NoDatabase);
        faults.Heal();
        using var healed = await client.Http.SendAsync(Request(method, path, sessionId));
        var body = await healed.Content.ReadAsStringAsync(); // a chat's stream read to its end
        Assert.True(healed.IsSuccessStatusCode, $"{method} {path}: {(int)healed.StatusCode} {body}");
    }

    [Fact]
    public async Task A_rename_whose_commit_is_answered_not_found_while_the_session_exists_is_a_store_error()
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "no-database-renamer");
        await client.ChatAsync(new { message = "hello" });
        var path = $"/api/sessions/{client.LastSessionId}";
        logs.Clear();
        // The database gone between the session's read and the commit: only the commit is told NOT_FOUND.
        faults.Fail(TitleCommit, StatusCode.NotFound, detail: NoDatabase);

        using (var refused = await client.Http.SendAsync(Request("PATCH", path)))
        {
            await AssertStoreErrorAsync(host, client, refused);
        }

        Assert.Equal(1, faults.Injected);
        AssertLoggedOnce(logs, "NotFound", NoDatabase);
        Assert.Equal("hello", (await client.GetJsonAsync(path)).GetProperty("title").GetString());
    }

    /// <summary>The other side: on a database that exists, a session that does not is still a 404 the client can act on.</summary>
    [Theory]
    [InlineData("GET", "/api/sessions/{id}")]
    [InlineData("PATCH", "/api/sessions/{id}")]
    [InlineData("POST", "/api/chat")]
    public async Task An_unknown_session_on_a_working_database_is_still_not_found(string method, string path)
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "unknown-session-user");
        const string Unknown = "no-such-session-0000";

        using var response = await client.Http.SendAsync(Request(method, path.Replace("{id}", Unknown, StringComparison.Ordinal), Unknown));

        await AssertSessionNotFoundAsync(response);
    }

    [Fact]
    public async Task A_session_deleted_between_its_read_and_its_rename_is_not_found_and_stays_deleted()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "deleted-meanwhile-user");
        await client.ChatAsync(new { message = "hello" });
        var path = $"/api/sessions/{client.LastSessionId}";
        // Another tab deletes it after the rename read it, just before the rename's commit.
        HttpStatusCode? deleted = null;
        faults.Before(TitleCommit, async () =>
        {
            using var delete = await client.Http.DeleteAsync(path);
            deleted = delete.StatusCode;
        });

        using (var response = await client.Http.SendAsync(Request("PATCH", path)))
        {
            await AssertSessionNotFoundAsync(response);
        }

        Assert.Equal(HttpStatusCode.NoContent, deleted);
        using var read = await client.Http.GetAsync(path);
        await AssertSessionNotFoundAsync(read); // the rename did not bring it back
    }

    private static readonly Func<IMessage, bool> TitleCommit =
        request => request is CommitRequest commit && commit.Writes.Any(w => w.UpdateMask?.FieldPaths.Contains("title") == true);

    private static async Task AssertSessionNotFoundAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{(int)response.StatusCode} {body}");
        Assert.Equal("session-not-found", JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
    }

    private static HttpRequestMessage Request(string method, string path, string? sessionId = null) => new(new HttpMethod(method), path)
    {
        Content = method switch
        {
            "PATCH" => new StringContent("{\"title\":\"Renamed\"}", Encoding.UTF8, "application/json"),
            "POST" => new StringContent(JsonSerializer.Serialize(new { session_id = sessionId, message = "still there?" }), Encoding.UTF8, "application/json"),
            _ => null,
        },
    };

    private static Task<long> QuotaLeft(ChatApiHost host, string user) => host.Services.GetRequiredService<UserLimiter>().TokensRemainingAsync(user, default);

    /// <summary>The store's refusal as a problem: declared, readable, telling the client it was not their doing, and not quoting Firestore.</summary>
    private static async Task AssertStoreErrorAsync(ChatApiHost host, ChatApiClient client, HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.InternalServerError, $"{(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("store-error", problem.GetProperty("code").GetString());
        Assert.Equal(500, problem.GetProperty("status").GetInt32());
        Assert.Equal("Conversation store refused the request", problem.GetProperty("title").GetString());
        var detail = problem.GetProperty("detail").GetString();
        Assert.Contains("not in your request", detail);
        Assert.Contains("No tokens were spent", detail);
        Assert.DoesNotContain("secret-project", body);
        Assert.DoesNotContain(host.Services.GetRequiredService<GoogleCloudOptions>().ProjectId!, body);
        (await OpenApiContract.LoadAsync(client.Http)).AssertDeclares(response);
    }

    /// <summary>
    /// One line for one refusal: the problem's, a warning with Firestore's status and words for the operator, and no
    /// second one for the same failure (the exception handler's "unhandled exception" with its stack).
    /// </summary>
    private static void AssertLoggedOnce(FakeLogCollector logs, string status, string firestoreSays = FirestoreSays)
    {
        var lines = logs.GetSnapshot()
            .Where(r => r.Category == "ChatStack.ChatApi.Problems" || r.Message.Contains(firestoreSays, StringComparison.Ordinal)
                || (r.Exception?.ToString().Contains(firestoreSays, StringComparison.Ordinal) ?? false))
            .ToList();
        var line = Assert.Single(lines);
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains("answered 500 store-error", line.Message);
        Assert.Contains($"Firestore refused the call with {status}: {firestoreSays}", line.Message);
    }
}
