using System.Net;
using System.Text.Json;
using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// One message at a time per session across instances: a turn holds its session in Firestore
/// (<c>session_turns/{sessionId}</c>) from its first commit to its last, on the emulator, with a fake clock for expiry.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class SessionTurnTests(StackFixture stack) : IDisposable
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(60);

    private static readonly Func<IMessage, bool> TurnCommit = request => request is CommitRequest commit
        && commit.Writes.Any(w => (w.Update?.Name ?? w.Delete).Contains("/documents/session_turns/", StringComparison.Ordinal));

    private readonly string _project = $"turns-{Guid.NewGuid():N}"[..24];
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly List<IDisposable> _channels = [];

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }

    /// <summary>An instance's store: its own channel, the same Firestore project.</summary>
    private FirestoreChatSessionStore Instance(Interceptor? calls = null)
    {
        var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        _channels.Add(channel);
        var client = calls is null ? new Firestore.FirestoreClient(channel) : new Firestore.FirestoreClient(channel.Intercept(calls));
        return new FirestoreChatSessionStore(client, new GoogleCloudOptions { ProjectId = _project }, _time);
    }

    private static ChatMessageRecord Message(string role, string content) => new()
    {
        Id = ChatMessageRecord.NewId(DateTimeOffset.UtcNow),
        Role = role,
        Content = content,
        CreatedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A new session whose first turn, under <paramref name="lease"/>, has saved its user message.</summary>
    private async Task<string> StartSessionAsync(IChatSessionStore store, TurnLease lease)
    {
        var session = new ChatSession { Id = Guid.NewGuid().ToString("N"), UserId = "alice", Title = "t", Model = "m", CreatedAt = _time.GetUtcNow(), UpdatedAt = _time.GetUtcNow() };
        await store.AppendMessageAsync(session.Id, Message("user", "first"), [], null, session, TurnChange.Claim(lease), SaveWait.Brief, default);
        return session.Id;
    }

    private static Task Answer(IChatSessionStore store, string sessionId, TurnLease lease, string text = "answer") =>
        store.AppendMessageAsync(sessionId, Message("assistant", text), [], new RunUsage(1, 1, 1, DateTimeOffset.UtcNow), null, TurnChange.GiveUp(lease), SaveWait.Brief, default);

    private static Task Ask(IChatSessionStore store, string sessionId, TurnLease lease, string text = "next") =>
        store.AppendMessageAsync(sessionId, Message("user", text), [], null, null, TurnChange.Claim(lease), SaveWait.Brief, default);

    private async Task<Document?> TurnDocument(string sessionId)
    {
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        return await FirestoreRetry.ReadDocumentAsync(new Firestore.FirestoreClient(channel), $"projects/{_project}/databases/(default)",
            $"projects/{_project}/databases/(default)/documents/session_turns/{sessionId}", default);
    }

    private static TurnLease Lease() => new(Guid.NewGuid().ToString("N"), Lifetime);

    [Fact]
    public async Task A_turn_on_another_instance_is_refused_with_nothing_saved_until_the_running_one_gives_the_session_up()
    {
        var (a, b) = (Instance(), Instance());
        var running = Lease();
        var session = await StartSessionAsync(a, running);
        Assert.Equal(running.StreamId, (await TurnDocument(session))!.Fields["stream_id"].StringValue);

        var busy = await Assert.ThrowsAsync<ChatSessionBusyException>(() => Ask(b, session, Lease(), "too soon"));
        Assert.Equal(running.StreamId, busy.StreamId);
        Assert.Single(await b.ListMessagesAsync(session, default)); // the refused message was not saved

        await Answer(a, session, running);
        Assert.Null(await TurnDocument(session));
        Assert.Null(running.Version);

        var next = Lease();
        await Ask(b, session, next);
        Assert.Equal(["first", "answer", "next"], (await a.ListMessagesAsync(session, default)).Select(m => m.Content));
        Assert.Equal(next.StreamId, (await TurnDocument(session))!.Fields["stream_id"].StringValue);
    }

    [Fact]
    public async Task A_renewed_turn_outlasts_its_first_lifetime_and_an_unrenewed_one_is_taken_over_once_it_expires()
    {
        var (a, b) = (Instance(), Instance());
        var running = Lease();
        var session = await StartSessionAsync(a, running);

        _time.Advance(TimeSpan.FromSeconds(50));
        await a.RenewTurnAsync(session, running, default);
        _time.Advance(TimeSpan.FromSeconds(30)); // 80 s since the claim, 30 since the renewal
        await Assert.ThrowsAsync<ChatSessionBusyException>(() => Ask(b, session, Lease()));

        _time.Advance(TimeSpan.FromSeconds(31)); // its instance stopped renewing: the hold lapses
        var successor = Lease();
        await Ask(b, session, successor, "taken over");

        // The first run finds it lost, and still saves its answer without touching the successor's hold.
        await a.RenewTurnAsync(session, running, default);
        Assert.True(running.Lost);
        await Answer(a, session, running, "late answer");
        Assert.Equal(successor.StreamId, (await TurnDocument(session))!.Fields["stream_id"].StringValue);
        Assert.Contains("late answer", (await a.ListMessagesAsync(session, default)).Select(m => m.Content));

        await Answer(b, session, successor);
        Assert.Null(await TurnDocument(session));
    }

    [Fact]
    public async Task A_claim_and_a_release_whose_answers_were_lost_after_Firestore_applied_them_count_once()
    {
        var faults = new FirestoreFaults();
        var store = Instance(faults);
        var lease = Lease();

        faults.Fail(TurnCommit, StatusCode.Unavailable, afterFirestoreApplied: true);
        var session = await StartSessionAsync(store, lease);
        Assert.NotNull(lease.Version); // known from a read: the repeat found the session held by this run
        faults.Fail(TurnCommit, StatusCode.Unavailable, afterFirestoreApplied: true);
        await Answer(store, session, lease);

        Assert.Equal(2, faults.Injected);
        Assert.Null(await TurnDocument(session));
        Assert.Equal(["first", "answer"], (await store.ListMessagesAsync(session, default)).Select(m => m.Content));
        Assert.Equal(1, (await store.GetSessionAsync(session, default))!.MessageCount); // the usage added once
    }

    [Fact]
    public async Task A_claim_repeated_after_another_instance_took_the_session_is_refused_not_taken_for_saved()
    {
        var faults = new FirestoreFaults();
        var (a, b) = (Instance(faults), Instance());
        var first = Lease();
        var session = await StartSessionAsync(b, first);
        await Answer(b, session, first);

        // A's claim fails on its way (nothing applied); before its repeat, B's next turn takes the session. The repeat
        // fails its precondition as a repeat of an applied commit would: A must read, not assume.
        var other = Lease();
        faults.Fail(TurnCommit, StatusCode.Unavailable);
        faults.Before(request => faults.Injected == 1 && TurnCommit(request), () => Ask(b, session, other, "B's"));
        var busy = await Assert.ThrowsAsync<ChatSessionBusyException>(() => Ask(a, session, Lease(), "A's"));

        Assert.Equal(other.StreamId, busy.StreamId);
        Assert.DoesNotContain("A's", (await a.ListMessagesAsync(session, default)).Select(m => m.Content));
    }

    [Fact]
    public async Task A_deletion_holds_the_session_on_every_instance_as_a_turn_does()
    {
        var (a, b) = (Instance(), Instance());
        var running = Lease();
        var session = await StartSessionAsync(a, running);

        var refused = await Assert.ThrowsAsync<ChatSessionBusyException>(() => b.ClaimTurnAsync(session, new TurnLease("deletion", Lifetime) { Deleting = true }, default));
        Assert.Equal((running.StreamId, false), (refused.StreamId, refused.Deleting));

        await Answer(a, session, running);
        await b.ClaimTurnAsync(session, new TurnLease("deletion", Lifetime) { Deleting = true }, default);
        var told = await Assert.ThrowsAsync<ChatSessionBusyException>(() => Ask(a, session, Lease(), "while it goes"));
        Assert.True(told.Deleting);

        // A deletion cut short leaves its hold; repeating it (here, or on another instance) is not locked out by it.
        await a.ClaimTurnAsync(session, new TurnLease("deletion again", Lifetime) { Deleting = true }, default);
        await b.DeleteSessionAsync(session, default);
        Assert.Null(await TurnDocument(session));
        Assert.Null(await a.GetSessionAsync(session, default));
    }

    [Fact]
    public async Task A_deletion_that_did_not_finish_gives_its_hold_up_and_one_that_lapsed_leaves_its_successors_alone()
    {
        var (a, b) = (Instance(), Instance());
        var first = Lease();
        var session = await StartSessionAsync(a, first);
        await Answer(a, session, first);

        var deletion = new TurnLease("deletion", Lifetime) { Deleting = true };
        await b.ClaimTurnAsync(session, deletion, default);
        await b.GiveUpTurnAsync(session, deletion, default);
        Assert.Null(await TurnDocument(session));

        // A deletion whose hold lapsed (its instance stalled) and was taken over gives up nothing of the successor's.
        var stalled = new TurnLease("stalled deletion", Lifetime) { Deleting = true };
        await b.ClaimTurnAsync(session, stalled, default);
        _time.Advance(Lifetime + TimeSpan.FromSeconds(1));
        var next = Lease();
        await Ask(a, session, next);
        await b.GiveUpTurnAsync(session, stalled, default);
        Assert.True(stalled.Lost);
        Assert.Equal(next.StreamId, (await TurnDocument(session))!.Fields["stream_id"].StringValue);
    }

    [Fact]
    public async Task Deleting_a_session_deletes_its_turns_hold()
    {
        var store = Instance();
        var lease = Lease();
        var session = await StartSessionAsync(store, lease);
        Assert.NotNull(await TurnDocument(session));

        await store.DeleteSessionAsync(session, default);

        Assert.Null(await TurnDocument(session));
        Assert.Null(await store.GetSessionAsync(session, default));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_turn_writes_its_hold_only_where_turns_are_shared(bool shared)
    {
        var faults = new FirestoreFaults();
        var turnWrites = 0;
        faults.Before(TurnCommit, () => Task.FromResult(Interlocked.Increment(ref turnWrites)));
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults,
            settings: new Dictionary<string, string?> { ["Chat:SharedTurns"] = shared ? "true" : "false" });
        var client = await ChatApiClient.SignInAsync(host.Address, "one-instance-user");

        Assert.Equal("done", (await client.ChatAsync(new { message = "hello" }))[^1].Event);

        // Shared: the claim, in the user message's commit (the first commit that touches the hold; Before fires once).
        Assert.Equal(shared ? 1 : 0, turnWrites);
    }

    [Fact]
    public async Task Two_chat_API_instances_answer_one_message_of_a_session_at_a_time()
    {
        var settings = new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = _project, ["Chat:Offline:DeltaDelayMs"] = "4" };
        await using var first = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        await using var second = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var (onFirst, onSecond) = (await ChatApiClient.SignInAsync(first.Address, "two-tabs"), await ChatApiClient.SignInAsync(second.Address, "two-tabs"));

        using var running = await onFirst.PostChatAsync(new { message = "Tell me a long story about queues." });
        running.EnsureSuccessStatusCode();
        var session = running.Headers.GetValues("X-Session-Id").Single();
        var stream = running.Headers.GetValues("X-Stream-Id").Single();
        await using var body = await running.Content.ReadAsStreamAsync();
        var events = Sse.ReadAsync(body).GetAsyncEnumerator();
        while (await events.MoveNextAsync() && events.Current.Event != "message_delta")
        {
        }

        using (var refused = await onSecond.PostChatAsync(new { session_id = session, message = "And another thing." }))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("turn-in-progress", problem.GetProperty("code").GetString());
            Assert.Equal(stream, problem.GetProperty("stream_id").GetString()); // the turn running on the other instance
        }

        using (var notYet = await onSecond.Http.DeleteAsync($"/api/sessions/{session}"))
        {
            Assert.Equal(HttpStatusCode.Conflict, notYet.StatusCode);
            Assert.Equal("turn-in-progress", JsonDocument.Parse(await notYet.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        var last = "";
        while (await events.MoveNextAsync())
        {
            last = events.Current.IsComment ? last : events.Current.Event;
        }

        Assert.Equal("done", last);
        var next = await onSecond.ChatAsync(new { session_id = session, message = "And another thing." });
        Assert.Equal("done", next.Last(e => !e.IsComment).Event);
        var messages = (await onSecond.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray()
            .Select(m => m.GetProperty("role").GetString()).ToList();
        Assert.Equal(["user", "assistant", "user", "assistant"], messages); // the refused send left nothing
        using var deleted = await onFirst.Http.DeleteAsync($"/api/sessions/{session}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
    }
}
