using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using ChatStack.ChatApi.Streaming;
using ChatStack.Contracts.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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

    private Task<Document?> TurnDocument(string sessionId) => Document($"session_turns/{sessionId}");

    private async Task<Document?> Document(string path)
    {
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        return await FirestoreRetry.ReadDocumentAsync(new Firestore.FirestoreClient(channel), $"projects/{_project}/databases/(default)",
            $"projects/{_project}/databases/(default)/documents/{path}", default);
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

    [Fact]
    public async Task A_stop_sent_to_an_instance_that_does_not_run_the_stream_stops_it_where_it_runs()
    {
        // A long answer, slowly: only a stop ends it within the test.
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ChatStackTelemetry.ChatApi,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var hosts = await TwoInstancesAsync("no-affinity", sentences: 400);
        var (first, second, onFirst, onSecond, stranger) = hosts;

        using var running = await onFirst.PostChatAsync(new { message = "Tell me a long story about queues." });
        running.EnsureSuccessStatusCode();
        var session = running.Headers.GetValues("X-Session-Id").Single();
        var stream = running.Headers.GetValues("X-Stream-Id").Single();
        await using var body = await running.Content.ReadAsStreamAsync();
        var events = new List<SseMessage>();
        await foreach (var message in Sse.ReadAsync(body))
        {
            if (message.IsComment)
            {
                continue;
            }

            events.Add(message);
            if (events.Count(e => e.Event == "message_delta") == 5)
            {
                // Not the stranger's to stop, nor a stream that exists: the second instance finds no such turn.
                using (var foreign = await stranger.Http.PostAsync($"/api/chat/streams/{stream}/cancel", null))
                {
                    Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
                }

                using (var unknown = await onSecond.Http.PostAsync("/api/chat/streams/0123456789abcdef0123456789abcdef/cancel", null))
                {
                    Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
                }

                using var stop = await onSecond.Http.PostAsync($"/api/chat/streams/{stream}/cancel", null);
                Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
            }
        }

        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("cancelled", done.GetProperty("finish_reason").GetString());
        var deltas = events.Where(e => e.Event == "message_delta").ToList();
        Assert.True(deltas.Count < 1_000, $"stopped well before its end ({deltas.Count} deltas)");

        // Saved as said, on either instance; the request was acted on and removed; the session takes the next message.
        var messages = (await onSecond.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray().ToList();
        Assert.Equal("cancelled", messages[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(string.Concat(deltas.Select(e => e.Payload.GetProperty("text").GetString())), messages[^1].GetProperty("content").GetString());
        Assert.Null(await Document($"stream_requests/{stream}.cancel"));
        Assert.Single(spans, span => span.DisplayName == "commit stream_requests" && span.GetTagItem(DbAttributes.Namespace) is string db && db.Contains(_project, StringComparison.Ordinal));
        using var next = await onSecond.PostChatAsync(new { session_id = session, message = "Shorter, please." });
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task A_stop_request_waiting_in_Firestore_is_acted_on_when_the_listen_starts()
    {
        // The listen is down when the stop is asked (say, a reconnect): the request waits, and the first snapshot of
        // the listen that starts next finds it.
        var settings = Paced(sentences: 400);
        var outage = new ListenOutage();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, settings,
            configure: builder => builder.Services.Replace(ServiceDescriptor.Singleton(_ => new Firestore.FirestoreClient(
                GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint).Intercept(outage)))));
        var client = await ChatApiClient.SignInAsync(host.Address, "late-listen");
        var listener = host.Services.GetRequiredService<FirestoreStreamRelay>();
        Assert.False(listener.Listening.IsCompleted);

        using var running = await client.PostChatAsync(new { message = "Tell me a long story about queues." });
        running.EnsureSuccessStatusCode();
        var stream = running.Headers.GetValues("X-Stream-Id").Single();
        Assert.True(await listener.RequestCancelAsync(stream, "late-listen", default)); // what another instance does
        Assert.NotNull(await Document($"stream_requests/{stream}.cancel"));

        Assert.True(outage.Refused > 0);
        outage.Down = false;
        var events = await Sse.ReadAllAsync(running);
        Assert.Equal("cancelled", events.Single(e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());
        Assert.Null(await Document($"stream_requests/{stream}.cancel"));
    }

    /// <summary>This test's Firestore project, and the offline model's answer of <paramref name="sentences"/> at a pace a test can interrupt.</summary>
    private Dictionary<string, string?> Paced(int sentences) => new()
    {
        ["GOOGLE_CLOUD_PROJECT"] = _project,
        ["Chat:Offline:DeltaDelayMs"] = "4",
        ["Chat:Offline:LongAnswerSentences"] = $"{sentences}",
    };

    private Dictionary<string, string?> Paced(int sentences, int reconnectGraceSeconds, int resumeWindowSeconds)
    {
        var settings = Paced(sentences);
        settings["Chat:ReconnectGraceSeconds"] = $"{reconnectGraceSeconds}";
        settings["Chat:ResumeWindowSeconds"] = $"{resumeWindowSeconds}";
        return settings;
    }

    /// <summary>
    /// Two instances on one Firestore, turns shared, the offline model at a pace a test can interrupt; <paramref name="user"/>
    /// signed in on each, and another user on the second.
    /// </summary>
    private async Task<TwoInstances> TwoInstancesAsync(string user, int sentences, int reconnectGraceSeconds = 10, int resumeWindowSeconds = 300)
    {
        var settings = Paced(sentences, reconnectGraceSeconds, resumeWindowSeconds);
        var first = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var second = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        await first.Services.GetRequiredService<FirestoreStreamRelay>().Listening.WaitAsync(TimeSpan.FromSeconds(30));
        await second.Services.GetRequiredService<FirestoreStreamRelay>().Listening.WaitAsync(TimeSpan.FromSeconds(30));
        return new TwoInstances(first, second, await ChatApiClient.SignInAsync(first.Address, user), await ChatApiClient.SignInAsync(second.Address, user),
            await ChatApiClient.SignInAsync(second.Address, "someone-else"));
    }

    private sealed record TwoInstances(ChatApiHost First, ChatApiHost Second, ChatApiClient OnFirst, ChatApiClient OnSecond, ChatApiClient Stranger) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await First.DisposeAsync();
            }
            finally
            {
                await Second.DisposeAsync();
            }
        }
    }

    /// <summary>The first <paramref name="count"/> events of a chat on <paramref name="client"/>'s instance; then its connection is dropped.</summary>
    private static async Task<(string Session, string Stream, List<SseMessage> Events)> ChatThenDropAsync(ChatApiClient client, int count)
    {
        using var response = await client.PostChatAsync(new { message = "Tell me a long story about queues." });
        response.EnsureSuccessStatusCode();
        var events = new List<SseMessage>();
        await using (var body = await response.Content.ReadAsStreamAsync())
        {
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (!message.IsComment && events.Count < count)
                {
                    events.Add(message);
                }

                if (events.Count == count)
                {
                    break;
                }
            }
        }

        return (response.Headers.GetValues("X-Session-Id").Single(), response.Headers.GetValues("X-Stream-Id").Single(), events);
    }

    private static async Task<HttpResponseMessage> ResumeAsync(ChatApiClient client, string stream, string? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/api/chat/streams/{stream}");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        return await client.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    [Fact]
    public async Task A_resume_on_an_instance_that_does_not_run_the_stream_follows_it_to_its_end_with_the_same_ids()
    {
        // A grace of 1 s: the run outlives its dropped reader only because the copy read elsewhere counts as one.
        await using var hosts = await TwoInstancesAsync("roaming", sentences: 100, reconnectGraceSeconds: 1);
        var (first, second, onFirst, onSecond, stranger) = hosts;
        var (session, stream, seen) = await ChatThenDropAsync(onFirst, 30);

        using (var foreign = await ResumeAsync(stranger, stream, seen[^1].Id))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        using (var unknown = await ResumeAsync(onSecond, "0123456789abcdef0123456789abcdef", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        using var resumed = await ResumeAsync(onSecond, stream, seen[^1].Id);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var rest = (await Sse.ReadAllAsync(resumed)).Where(e => !e.IsComment).ToList();

        // The rest of the same stream: ids go on from the last one seen, without a gap or a repeat, to its done.
        var all = seen.Concat(rest).ToList();
        Assert.Equal(Enumerable.Range(1, all.Count).Select(n => $"{stream}.{n}"), all.Select(e => e.Id));
        Assert.Equal("stop", all[^1].Payload.GetProperty("finish_reason").GetString());
        var messages = (await onFirst.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray().ToList();
        Assert.Equal(string.Concat(all.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString())),
            messages[^1].GetProperty("content").GetString());

        // The ended stream resumes from the replica kept on the second instance, as on the first.
        using var again = await ResumeAsync(onSecond, stream, $"{stream}.{all.Count - 1}");
        Assert.Equal("done", Assert.Single(await Sse.ReadAllAsync(again), e => !e.IsComment).Event);
    }

    [Fact]
    public async Task A_stream_that_ended_resumes_on_another_instance_within_the_resume_window()
    {
        await using var hosts = await TwoInstancesAsync("late", sentences: 20, resumeWindowSeconds: 8);
        var (first, second, onFirst, onSecond, stranger) = hosts;

        // Read to the end on the first instance: its hold is given up, and nothing was ever copied.
        using var chat = await onFirst.PostChatAsync(new { message = "Tell me a long story about queues." });
        chat.EnsureSuccessStatusCode();
        var stream = chat.Headers.GetValues("X-Stream-Id").Single();
        var all = (await Sse.ReadAllAsync(chat)).Where(e => !e.IsComment).ToList();
        Assert.Equal("done", all[^1].Event);
        var ended = await Document($"stream_ends/{stream}");
        Assert.NotNull(ended);
        Assert.Equal(first.Services.GetRequiredService<ChatStreamRegistry>().InstanceId, ended.Fields["instance_id"].StringValue);

        // A client that lost the last events reconnects, and reaches the second instance: the same events, same ids.
        var lost = all.Count - 12;
        using (var resumed = await ResumeAsync(onSecond, stream, all[lost - 1].Id))
        {
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            var rest = (await Sse.ReadAllAsync(resumed)).Where(e => !e.IsComment).ToList();
            Assert.Equal(all.Skip(lost).Select(e => (e.Id, e.Event, e.Data)), rest.Select(e => (e.Id, e.Event, e.Data)));
        }

        using (var foreign = await ResumeAsync(stranger, stream, all[lost - 1].Id))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        // Stopping it there is what it is where it ran: nothing left to stop, 204; not for someone else's.
        Assert.Equal(HttpStatusCode.NoContent, (await onSecond.Http.PostAsync($"/api/chat/streams/{stream}/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.Http.PostAsync($"/api/chat/streams/{stream}/cancel", null)).StatusCode);

        // Once the window has closed, the first instance has forgotten it, and so has Firestore's record of it.
        var third = await ChatApiHost.StartAsync(stack.FirestoreHost, Paced(sentences: 20, reconnectGraceSeconds: 10, resumeWindowSeconds: 8));
        await using var _ = third;
        var onThird = await ChatApiClient.SignInAsync(third.Address, "late");
        await Task.Delay(TimeSpan.FromSeconds(8));
        var started = Stopwatch.StartNew();
        using (var closed = await ResumeAsync(onThird, stream, all[lost - 1].Id))
        {
            Assert.Equal(HttpStatusCode.NotFound, closed.StatusCode);
        }

        Assert.True(started.Elapsed < TimeSpan.FromSeconds(4), $"answered after {started.Elapsed}: asked the instance instead of reading the record's expiry");
        Assert.Equal(HttpStatusCode.NotFound, (await onThird.Http.PostAsync($"/api/chat/streams/{stream}/cancel", null)).StatusCode);
    }

    [Fact]
    public async Task A_stream_read_only_on_another_instance_is_stopped_when_its_reader_there_leaves()
    {
        await using var hosts = await TwoInstancesAsync("leaver", sentences: 400, reconnectGraceSeconds: 1);
        var (first, second, onFirst, onSecond, _) = hosts;
        var (session, stream, seen) = await ChatThenDropAsync(onFirst, 10);

        using (var resumed = await ResumeAsync(onSecond, stream, seen[^1].Id))
        {
            await using var body = await resumed.Content.ReadAsStreamAsync();
            var read = 0;
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (!message.IsComment && ++read == 10)
                {
                    break; // and the reader on the second instance leaves too
                }
            }
        }

        // Its replica's grace, then the first instance's: the run is cancelled as for a reader that hung up.
        JsonElement? answer = null;
        for (var waited = 0; waited < 200 && answer is null; waited++)
        {
            await Task.Delay(100);
            answer = (await onFirst.GetJsonAsync($"/api/sessions/{session}/messages")).EnumerateArray()
                .Where(m => m.GetProperty("role").GetString() == "assistant").Cast<JsonElement?>().FirstOrDefault();
        }

        Assert.NotNull(answer);
        Assert.Equal("cancelled", answer.Value.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task A_follower_whose_copy_stops_growing_lets_its_readers_go_once_the_stream_has_no_live_turn()
    {
        // The running instance copies the stream once, then every further copy commit is refused (as if it had died
        // mid-copy, or its copy failed): the reader elsewhere must not wait on a copy that never ends.
        var settings = Paced(sentences: 60);
        settings["Chat:TurnLeaseSeconds"] = "3";
        var faults = new FirestoreFaults();
        var copies = 0;
        faults.Fail(request => request is CommitRequest commit
            && commit.Writes.Any(w => w.Update?.Name.Contains("/stream_events/", StringComparison.Ordinal) == true)
            && Interlocked.Increment(ref copies) > 1, StatusCode.PermissionDenied, times: int.MaxValue);
        await using var first = await ChatApiHost.StartAsync(stack.FirestoreHost, settings,
            configure: builder => builder.Services.Replace(ServiceDescriptor.Singleton(_ => new Firestore.FirestoreClient(
                GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint).Intercept(faults)))));
        await using var second = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        await first.Services.GetRequiredService<FirestoreStreamRelay>().Listening.WaitAsync(TimeSpan.FromSeconds(30));
        var (onFirst, onSecond) = (await ChatApiClient.SignInAsync(first.Address, "stalled"), await ChatApiClient.SignInAsync(second.Address, "stalled"));

        // Read on the first instance to the end (so the run is not stopped for want of a reader), and meanwhile resume
        // on the second from the start.
        using var running = await onFirst.PostChatAsync(new { message = "Tell me a long story about queues." });
        running.EnsureSuccessStatusCode();
        var stream = running.Headers.GetValues("X-Stream-Id").Single();
        var original = Sse.ReadAllAsync(running);
        using var resumed = await ResumeAsync(onSecond, stream, null);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var followed = await Sse.ReadAllAsync(resumed).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal("done", (await original).Last(e => !e.IsComment).Event);
        Assert.NotEqual("done", followed.LastOrDefault(e => !e.IsComment)?.Event); // ended without the copy's end
        Assert.True(faults.Injected > 0);
        using var gone = await ResumeAsync(onSecond, stream, null);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode); // forgotten there, and its instance cannot copy it again
    }

    /// <summary>Firestore refusing listens (UNAVAILABLE) while <see cref="Down"/>; every other call passes.</summary>
    private sealed class ListenOutage : Interceptor
    {
        private int _refused;

        public volatile bool Down = true;

        public int Refused => Volatile.Read(ref _refused);

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context,
            AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            if (!Down)
            {
                return continuation(context);
            }

            Interlocked.Increment(ref _refused);
            var status = new Status(StatusCode.Unavailable, "listen refused by the test");
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(new Discard<TRequest>(), new FailingReader<TResponse>(new RpcException(status)),
                Task.FromResult(new Metadata()), () => status, () => [], () => { });
        }

        private sealed class Discard<T> : IClientStreamWriter<T>
        {
            public WriteOptions? WriteOptions { get; set; }

            public Task WriteAsync(T message) => Task.CompletedTask;

            public Task WriteAsync(T message, CancellationToken cancellationToken) => Task.CompletedTask;

            public Task CompleteAsync() => Task.CompletedTask;
        }

        private sealed class FailingReader<T>(Exception failure) : IAsyncStreamReader<T>
        {
            public T Current => throw new InvalidOperationException();

            public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromException<bool>(failure);
        }
    }
}
