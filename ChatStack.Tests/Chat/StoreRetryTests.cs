using System.Net;
using System.Text.Json;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// The chat API on the stack's Firestore emulator while Firestore fails as it does in production, for a moment or for
/// good: a transient failure is retried, an answer already streamed is saved exactly once, and what cannot be saved
/// is told as the store's failure (503, <c>store_unavailable</c>), never as the model's.
/// </summary>
[Collection(StackCollection.Name)]
public class StoreRetryTests(StackFixture stack)
{
    [Fact]
    public async Task An_answer_whose_commit_failed_before_reaching_firestore_is_saved_by_a_retry()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "retry-unreached-user");
        faults.Fail(FirestoreFaults.MessageCommit("assistant"), StatusCode.Unavailable);

        var events = await client.ChatAsync(new { message = "hello" });

        Assert.Equal(1, faults.Injected);
        Assert.Equal("done", events[^1].Event);
        Assert.Equal(["user", "assistant"], await RolesAsync(client));
        Assert.Equal(2, (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("message_count").GetInt32());
    }

    [Theory]
    [InlineData(StatusCode.Unavailable)]
    [InlineData(StatusCode.DeadlineExceeded)]
    public async Task An_answer_commit_that_firestore_applied_before_the_client_heard_is_saved_once(StatusCode status)
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "retry-applied-user");
        faults.Fail(FirestoreFaults.MessageCommit("assistant"), status, afterFirestoreApplied: true);

        var events = await client.ChatAsync(new { message = "hello" });

        // The retry met the answer the first attempt saved, and took it as saved.
        Assert.Equal(1, faults.Injected);
        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("done", events[^1].Event);
        var messages = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().ToList();
        Assert.Equal(["user", "assistant"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(done.GetProperty("assistant_message_id").GetString(), messages[1].GetProperty("id").GetString());
        // Its usage increments and outbox records once, not once per attempt.
        var session = await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}");
        Assert.Equal(2, session.GetProperty("message_count").GetInt32());
        Assert.Equal(done.GetProperty("usage").GetProperty("total_tokens").GetInt32(), session.GetProperty("total_tokens").GetInt32());
        Assert.Equal(2, await OutboxCountAsync(host));
    }

    [Fact]
    public async Task A_commit_refused_on_its_first_attempt_is_not_taken_as_saved()
    {
        // "Already exists" means "saved" only on a retry after an attempt that may have been applied.
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "refused-first-user");
        faults.Fail(FirestoreFaults.MessageCommit("assistant"), StatusCode.AlreadyExists);

        var events = await client.ChatAsync(new { message = "hello" });

        Assert.Equal("error", events[^1].Event);
        Assert.Equal("store_error", events[^1].Payload.GetProperty("code").GetString());
        Assert.Equal(["user"], await RolesAsync(client));
    }

    [Fact]
    public async Task A_turn_whose_answer_could_not_be_saved_does_not_hold_its_session_against_the_next_message()
    {
        // The answer's commit, which also gives up the turn's hold in Firestore, is refused: the hold stays behind. This
        // instance saw that turn end, so its next message takes the hold over rather than waiting out its lease.
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "unsaved-answer-user");
        faults.Fail(FirestoreFaults.MessageCommit("assistant"), StatusCode.PermissionDenied);
        Assert.Equal("store_error", (await client.ChatAsync(new { message = "hello" }))[^1].Payload.GetProperty("code").GetString());

        var next = await client.ChatAsync(new { session_id = client.LastSessionId, message = "hello again" });

        Assert.Equal(1, faults.Injected);
        Assert.Equal("done", next[^1].Event);
        Assert.Equal(["user", "user", "assistant"], await RolesAsync(client));
    }

    [Fact]
    public async Task Contention_on_every_attempt_at_the_start_of_a_turn_answers_503_with_retry_after()
    {
        var faults = new FirestoreFaults();
        var logs = new FakeLogCollector();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "contended-user");
        logs.Clear();
        faults.Fail(FirestoreFaults.MessageCommit("user"), StatusCode.Aborted, int.MaxValue, detail: "contended by the test");

        using (var refused = await client.PostChatAsync(new { message = "hello?" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Equal("store-unavailable", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        Assert.True(faults.Injected >= 1);
        // One line for one refused request: the problem's, saying what Firestore answered (it was two, the run's too).
        var line = Assert.Single(logs.GetSnapshot(), r => r.Category == "ChatStack.ChatApi.Problems"
            || r.Message.Contains("contended by the test", StringComparison.Ordinal) || (r.Exception?.ToString().Contains("contended by the test", StringComparison.Ordinal) ?? false));
        Assert.Contains("answered 503 store-unavailable", line.Message);
        Assert.Contains("Aborted: contended by the test", line.Message);
        faults.Heal();
        Assert.Equal(0, (await client.GetJsonAsync("/api/sessions")).GetProperty("sessions").GetArrayLength());
        Assert.Equal("done", (await client.ChatAsync(new { message = "hello?" }))[^1].Event);
    }

    [Fact]
    public async Task A_store_that_refuses_a_tool_message_ends_the_turn_with_store_unavailable_not_model_error()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "quota-tool-user");
        faults.Fail(FirestoreFaults.MessageCommit("tool"), StatusCode.ResourceExhausted, int.MaxValue);

        var events = await client.ChatAsync(new { message = "What is 17 * 3?" });

        Assert.True(faults.Injected >= 1);
        Assert.Contains(events, e => e.Event == "tool_start");
        Assert.Equal("error", events[^1].Event);
        Assert.Equal("store_unavailable", events[^1].Payload.GetProperty("code").GetString());
        Assert.DoesNotContain("tool", await RolesAsync(client));
    }

    [Fact]
    public async Task A_store_that_refuses_a_tool_message_for_good_ends_the_turn_with_store_error_not_model_error()
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "denied-tool-user");
        faults.Fail(FirestoreFaults.MessageCommit("tool"), StatusCode.PermissionDenied);

        var events = await client.ChatAsync(new { message = "What is 17 * 3?" });

        Assert.Equal(1, faults.Injected); // a refusal is not retried
        Assert.Contains(events, e => e.Event == "tool_start");
        AssertEndsWithStoreError(events);
        AssertLoggedOnceAsStoreRefusal(logs, "PermissionDenied");
        // Finalize still did its part: the run's spending is on the session, next to the user's message.
        Assert.Equal(["user"], await RolesAsync(client));
        var session = await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}");
        Assert.Equal(events[^2].Payload.GetProperty("total").GetInt32(), session.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task A_summary_refused_because_the_session_is_gone_ends_the_turn_with_store_error()
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "summary-gone-user");
        // The summary's write: the session document with its summary fields (another instance deleted the session).
        faults.Fail(request => request is CommitRequest commit && commit.Writes.Any(w => w.UpdateMask?.FieldPaths.Contains("summary") == true), StatusCode.NotFound);

        // A small context window: the conversation needs summarizing after a few turns; that turn meets the fault.
        List<SseMessage> events = [];
        for (var turn = 0; turn < 8 && faults.Injected == 0; turn++)
        {
            events = await client.ChatAsync(new { session_id = client.LastSessionId, message = $"Turn {turn}: tell me about topic number {turn}.", model = "chatstack-offline-small-context" });
        }

        Assert.Equal(1, faults.Injected);
        Assert.DoesNotContain(events, e => e.Event is "summarized" or "message_delta");
        AssertEndsWithStoreError(events);
        AssertLoggedOnceAsStoreRefusal(logs, "NotFound");
        var session = await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}");
        Assert.True(!session.TryGetProperty("summary", out var summary) || summary.ValueKind == JsonValueKind.Null);
    }

    private static void AssertEndsWithStoreError(List<SseMessage> events)
    {
        Assert.Equal("error", events[^1].Event);
        Assert.Equal("store_error", events[^1].Payload.GetProperty("code").GetString());
        Assert.Equal("token_count", events[^2].Event);
        Assert.Equal("finalize", events[^2].Payload.GetProperty("phase").GetString());
    }

    /// <summary>One error line, the store's, naming Firestore's status; none blaming the model.</summary>
    private static void AssertLoggedOnceAsStoreRefusal(FakeLogCollector logs, string status)
    {
        var errors = logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).ToList();
        Assert.DoesNotContain(errors, r => r.Message.StartsWith("Model call failed", StringComparison.Ordinal));
        var error = Assert.Single(errors, r => r.Category == "ChatStack.ChatApi.Agent.ChatAgent");
        Assert.StartsWith($"The store refused a save ({status})", error.Message);
    }

    [Fact]
    public async Task Reads_that_fail_once_are_retried()
    {
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "blip-reader");
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;

        // The session by id (BatchGetDocuments, a stream), its messages by page (RunQuery), and whole (ListDocuments:
        // the history a turn of an unsummarized session reads).
        faults.Fail(FirestoreFaults.SessionRead, StatusCode.Unavailable);
        faults.Fail(request => request is RunQueryRequest { StructuredQuery.From: [{ CollectionId: "messages" }] }, StatusCode.Unavailable);

        Assert.Equal("hello", (await client.GetJsonAsync($"/api/sessions/{sessionId}")).GetProperty("title").GetString());
        Assert.Equal(2, (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength());
        faults.Fail(request => request is ListDocumentsRequest { CollectionId: "messages" }, StatusCode.Unavailable);
        var turn = await client.ChatAsync(new { session_id = sessionId, message = "And again?" });
        Assert.Equal("done", turn.Last(e => !e.IsComment).Event);
        Assert.Equal(4, (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength());
        Assert.Equal(3, faults.Injected);
    }

    private static async Task<string[]> RolesAsync(ChatApiClient client) =>
        (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().Select(m => m.GetProperty("role").GetString()!).ToArray();

    /// <summary>The chat events waiting in the host's outbox (Pub/Sub is unreachable in these hosts, so none leaves).</summary>
    private async Task<int> OutboxCountAsync(ChatApiHost host)
    {
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var outbox = await new Firestore.FirestoreClient(channel).ListDocumentsAsync(new ListDocumentsRequest
        {
            Parent = $"projects/{host.Services.GetRequiredService<GoogleCloudOptions>().ProjectId}/databases/(default)/documents",
            CollectionId = "outbox",
            PageSize = 100,
        });
        return outbox.Documents.Count;
    }
}
