using System.Net;
using System.Text.Json;
using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Sessions;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.Chat;

/// <summary><c>DELETE /api/sessions/{id}</c> on Kestrel, against the real Firestore emulator and with the in-memory store.</summary>
[Collection(StackCollection.Name)]
public class SessionDeletionTests(StackFixture stack)
{
    public static TheoryData<bool> Stores => new() { true, false };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_deleted_session_and_its_messages_are_gone_and_only_its_owner_can_delete_it(bool firestore)
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore, stack.FirestoreHost);
        var alice = await ChatApiClient.SignInAsync(host.Address, $"delete-alice-{firestore}");
        await alice.ChatAsync(new { message = "What is 6*7?" });
        var doomed = alice.LastSessionId!;
        await alice.ChatAsync(new { message = "Keep this one." });
        var kept = alice.LastSessionId!;

        // Someone else's delete is a 404, as their read is, and deletes nothing.
        var bob = await ChatApiClient.SignInAsync(host.Address, $"delete-bob-{firestore}");
        using (var foreign = await bob.Http.DeleteAsync($"/api/sessions/{doomed}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        Assert.NotEmpty((await alice.GetJsonAsync($"/api/sessions/{doomed}/messages")).EnumerateArray());

        using (var deleted = await alice.Http.DeleteAsync($"/api/sessions/{doomed}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        foreach (var path in new[] { $"/api/sessions/{doomed}", $"/api/sessions/{doomed}/messages" })
        {
            using var read = await alice.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        }

        var store = host.Services.GetRequiredService<IChatSessionStore>();
        Assert.Empty(await store.ListMessagesAsync(doomed, CancellationToken.None));
        var listed = (await alice.GetJsonAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetString());
        Assert.Equal([kept], listed);
        Assert.NotEmpty((await alice.GetJsonAsync($"/api/sessions/{kept}/messages")).EnumerateArray());

        // Continuing a deleted session is a 404, and deleting it again too.
        using (var continued = await alice.PostChatAsync(new { session_id = doomed, message = "Are you still there?" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, continued.StatusCode);
        }

        using var again = await alice.Http.DeleteAsync($"/api/sessions/{doomed}");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("session-not-found", JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_session_with_more_messages_than_one_commit_takes_is_deleted_whole()
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost);
        var client = await ChatApiClient.SignInAsync(host.Address, "delete-long");
        await client.ChatAsync(new { message = "hello" });
        var session = client.LastSessionId!;
        var store = host.Services.GetRequiredService<IChatSessionStore>();
        // Firestore takes at most 500 writes in a commit: more than that many messages need several.
        await Parallel.ForAsync(0, 620, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
            await store.AppendMessageAsync(session, new ChatMessageRecord
            {
                Id = ChatMessageRecord.NewId(DateTimeOffset.UtcNow),
                Role = "user",
                Content = $"message {i}",
                CreatedAt = DateTimeOffset.UtcNow,
            }, Array.Empty<OutboxRecord>(), null, null, null, SaveWait.Brief, ct));
        Assert.True((await store.ListMessagesAsync(session, CancellationToken.None)).Count > 620);

        using var deleted = await client.Http.DeleteAsync($"/api/sessions/{session}");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Empty(await store.ListMessagesAsync(session, CancellationToken.None));
        Assert.Null(await store.GetSessionAsync(session, CancellationToken.None));
    }

    [Fact]
    public async Task A_session_answering_a_message_is_not_deleted_until_the_turn_ends()
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost, deltaDelayMs: 8);
        var client = await ChatApiClient.SignInAsync(host.Address, "delete-busy");
        using var turn = await client.PostChatAsync(new { message = "Tell me a long story about deletion." });
        var session = turn.Headers.GetValues("X-Session-Id").Single();
        var streamId = turn.Headers.GetValues("X-Stream-Id").Single();
        await using var body = await turn.Content.ReadAsStreamAsync();
        var events = Sse.ReadAsync(body).GetAsyncEnumerator();
        while (await events.MoveNextAsync() && events.Current.Event != "message_delta")
        {
        }

        using (var refused = await client.Http.DeleteAsync($"/api/sessions/{session}"))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("turn-in-progress", problem.GetProperty("code").GetString());
            Assert.Equal(streamId, problem.GetProperty("stream_id").GetString());
        }

        var last = "";
        while (await events.MoveNextAsync())
        {
            last = events.Current.Event ?? last;
        }

        Assert.Equal("done", last); // the refused delete did not disturb the turn
        using var deleted = await client.Http.DeleteAsync($"/api/sessions/{session}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
    }

    [Fact]
    public async Task Stopping_an_answer_and_deleting_at_once_deletes_once_the_stopped_turn_has_saved()
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost, deltaDelayMs: 8);
        var client = await ChatApiClient.SignInAsync(host.Address, "delete-stopped");
        string session;
        using (var turn = await client.PostChatAsync(new { message = "Tell me a long story about regret." }))
        {
            session = turn.Headers.GetValues("X-Session-Id").Single();
            await using var body = await turn.Content.ReadAsStreamAsync();
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (message.Event == "message_delta")
                {
                    break;
                }
            }
        }

        using var deleted = await client.Http.DeleteAsync($"/api/sessions/{session}");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        var store = host.Services.GetRequiredService<IChatSessionStore>();
        Assert.Null(await store.GetSessionAsync(session, CancellationToken.None));
        Assert.Empty(await store.ListMessagesAsync(session, CancellationToken.None)); // nothing written after the delete
    }

    [Fact]
    public async Task A_message_sent_while_a_slow_delete_runs_is_told_the_session_is_being_deleted()
    {
        var (host, store) = await ChatApiHost.StartObservedAsync(stack.FirestoreHost);
        await using var ownedHost = host;
        var client = await ChatApiClient.SignInAsync(host.Address, "delete-slow");
        await client.ChatAsync(new { message = "hello" });
        var session = client.LastSessionId!;
        store.DeleteGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var deleting = client.Http.DeleteAsync($"/api/sessions/{session}");
        await store.DeleteStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using (var refused = await client.PostChatAsync(new { session_id = session, message = "one more thing" }))
        {
            // Past the 2 s a send waits for a session to be free: a 409 that names the delete, not a stream to follow.
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("session-being-deleted", problem.GetProperty("code").GetString());
            Assert.False(problem.TryGetProperty("stream_id", out _));
        }

        store.DeleteGate.SetResult();
        using (var deleted = await deleting)
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var gone = await client.PostChatAsync(new { session_id = session, message = "one more thing" });
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Deleting_with_a_bad_id_is_a_400_and_with_the_store_down_a_503()
    {
        await using (var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost))
        {
            var client = await ChatApiClient.SignInAsync(host.Address, "delete-bad-id");
            using var bad = await client.Http.DeleteAsync("/api/sessions/not.a.session");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal("invalid-session-id", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        await using (var down = await ChatApiHost.StartAsync("127.0.0.1:1", new Dictionary<string, string?>()))
        {
            var client = await ChatApiClient.SignInAsync(down.Address, "delete-store-down");
            using var unavailable = await client.Http.DeleteAsync("/api/sessions/some-session");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
            Assert.True(unavailable.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        }
    }
}
