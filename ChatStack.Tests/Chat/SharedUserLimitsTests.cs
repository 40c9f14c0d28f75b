using System.Net;
using System.Net.Http.Json;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// The limiter's rules over Firestore (every test of <see cref="UserLimiterTests"/>), and what only a shared store
/// does: several instances of the API enforcing one window per user, under races and lost answers, on the emulator.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class SharedUserLimitsTests(StackFixture stack) : UserLimiterTests, IDisposable
{
    private static readonly Func<IMessage, bool> LimitsCommit = request => request is CommitRequest commit
        && commit.Writes.Any(w => w.Update?.Name.Contains("/documents/user_limits/", StringComparison.Ordinal) == true);

    private static readonly Func<IMessage, bool> LimitsRead = request => request is BatchGetDocumentsRequest read
        && read.Documents.Any(name => name.Contains("/documents/user_limits/", StringComparison.Ordinal));

    private readonly string _project = $"limits-{Guid.NewGuid():N}"[..24];
    private readonly List<IDisposable> _channels = [];

    private protected override IUserUsageStore Store(LimitOptions options) => NewStore(options);

    /// <param name="calls">What each Firestore call passes on its way (faults to inject, a counter), if anything.</param>
    private FirestoreUserUsageStore NewStore(LimitOptions options, Interceptor? calls = null)
    {
        var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        _channels.Add(channel);
        var client = calls is null ? new Firestore.FirestoreClient(channel) : new Firestore.FirestoreClient(channel.Intercept(calls));
        return new FirestoreUserUsageStore(client, new GoogleCloudOptions { ProjectId = _project }, options);
    }

    /// <summary>Another instance of the API: its own client and channel, the same Firestore project.</summary>
    private UserLimiter Instance(LimitOptions options, Interceptor? calls = null, ILogger<UserLimiter>? logger = null) =>
        new(options, NewStore(options, calls), _time, logger ?? NullLogger<UserLimiter>.Instance);

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }

    [Fact]
    public async Task Two_instances_enforce_one_request_window_and_one_token_quota_per_user()
    {
        var options = new LimitOptions { RequestsPerWindow = 3, RequestWindowSeconds = 60, TokensPerWindow = 1000 };
        var (a, b) = (Instance(options), Instance(options));

        Assert.Equal(2, (await a.TryAdmitAsync("alice", default)).Remaining);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1, (await b.TryAdmitAsync("alice", default)).Remaining);
        Assert.Equal(0, (await a.TryAdmitAsync("alice", default)).Remaining);
        var refused = await b.TryAdmitAsync("alice", default);
        // Refused on the other instance, until the first request (taken on A) leaves the window.
        Assert.Equal((false, LimitDecision.RateLimited, TimeSpan.FromSeconds(50)), (refused.Allowed, refused.Code, refused.RetryAfter));

        // A run on A holds most of the quota: B sees it held, not free.
        var running = (await a.TryHoldAsync("alice", 800, needed: 10, default)).Hold!;
        var short1 = await b.TryHoldAsync("alice", 800, needed: 300, default);
        Assert.Equal((200L, 800L, UserLimiter.HeldRetryAfter), (short1.Available, short1.HeldByOthers, short1.RetryAfter));

        // Settled on A: B may hold what was not spent.
        await running.SettleAsync(500);
        Assert.Equal(500, (await b.TryHoldAsync("alice", 800, needed: 300, default)).Hold!.Tokens);
        Assert.Equal(0, await a.TokensRemainingAsync("alice", default));
    }

    [Fact]
    public async Task Admissions_racing_on_two_instances_never_pass_the_limit()
    {
        var options = new LimitOptions { RequestsPerWindow = 10, RequestWindowSeconds = 60 };
        var (a, b) = (Instance(options), Instance(options));

        var decisions = await Task.WhenAll(Enumerable.Range(0, 24).Select(i => Task.Run(() => (i % 2 == 0 ? a : b).TryAdmitAsync("racer", default))));

        Assert.Equal(10, decisions.Count(d => d.Allowed));
        Assert.All(decisions.Where(d => !d.Allowed), d => Assert.Equal(LimitDecision.RateLimited, d.Code));
        Assert.Equal(0, (await a.TryAdmitAsync("racer", default)).Remaining);
    }

    [Fact]
    public async Task A_chat_is_admitted_with_its_hold_in_one_commit_and_settled_in_one_while_no_other_instance_wrote_between()
    {
        var calls = new CallCounter();
        var options = new LimitOptions();
        var limiter = Instance(options, calls);

        // A user this instance has not seen: read (absent), then written.
        var (_, quota) = await limiter.TryAdmitAndHoldAsync("alice", 500, needed: 1, default);
        Assert.Equal((1, 1), (calls.Reads, calls.Commits));
        await quota!.Hold!.SettleAsync(100);
        Assert.Equal((1, 2), (calls.Reads, calls.Commits));
        var (_, next) = await limiter.TryAdmitAndHoldAsync("alice", 500, needed: 1, default);
        Assert.Equal((1, 3), (calls.Reads, calls.Commits));

        // Another instance wrote in between: the copy's commit fails, and the document is read again.
        await Instance(options).TryAdmitAsync("alice", default);
        await next!.Hold!.SettleAsync(100);
        Assert.Equal((2, 5), (calls.Reads, calls.Commits));
        Assert.Equal(options.TokensPerWindow - 200, await limiter.TokensRemainingAsync("alice", default));
    }

    [Fact]
    public async Task One_users_changes_at_once_on_one_instance_wait_for_each_other_rather_than_race()
    {
        var calls = new CallCounter();
        var options = new LimitOptions { RequestsPerWindow = 50 };
        var limiter = Instance(options, calls);
        await limiter.TryAdmitAsync("alice", default); // the instance has its copy: one read, one commit

        var decisions = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => limiter.TryAdmitAndHoldAsync("alice", 100, needed: 1, default))));

        Assert.All(decisions, d => Assert.NotNull(d.Quota!.Hold));
        // One commit each, in turn, each on the copy the one before wrote: no commit failed, nothing was read again.
        Assert.Equal((1, 9), (calls.Reads, calls.Commits));
        Assert.Equal(40, (await Instance(options).TryAdmitAsync("alice", default)).Remaining);
    }

    [Fact]
    public async Task A_refusal_is_decided_from_the_document_never_from_an_instances_copy_of_it()
    {
        var options = new LimitOptions { RequestsPerWindow = 3 };
        var (a, b) = (Instance(options), Instance(options));
        await a.TryAdmitAsync("alice", default);
        var given = await b.TryAdmitAsync("alice", default);
        Assert.Equal(0, (await a.TryAdmitAsync("alice", default)).Remaining); // A's copy now holds a full window

        // B gives its slot back (a chat that failed on our side): A's copy still shows the window full.
        await given.Slot!.ReleaseAsync();
        var admitted = await a.TryAdmitAsync("alice", default);

        Assert.True(admitted.Allowed);
        Assert.Equal(0, admitted.Remaining);
    }

    /// <summary>Counts the calls that pass: batch reads and commits.</summary>
    private sealed class CallCounter : Interceptor
    {
        private int _reads;
        private int _commits;

        public int Reads => Volatile.Read(ref _reads);

        public int Commits => Volatile.Read(ref _commits);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
            AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (request is CommitRequest)
            {
                Interlocked.Increment(ref _commits);
            }

            return continuation(request, context);
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
            ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            if (request is BatchGetDocumentsRequest)
            {
                Interlocked.Increment(ref _reads);
            }

            return continuation(request, context);
        }
    }

    [Fact]
    public async Task A_write_that_lost_the_race_reads_the_winner_and_decides_again()
    {
        var options = new LimitOptions { RequestsPerWindow = 2, RequestWindowSeconds = 60 };
        var faults = new FirestoreFaults();
        var (a, b) = (Instance(options, faults), Instance(options));
        Assert.True((await b.TryAdmitAsync("alice", default)).Allowed);

        // A reads one request in the window; B takes the last place before A's commit arrives.
        faults.Before(LimitsCommit, async () => Assert.True((await b.TryAdmitAsync("alice", default)).Allowed));
        var late = await a.TryAdmitAsync("alice", default);

        Assert.Equal((false, LimitDecision.RateLimited), (late.Allowed, late.Code));
        Assert.Equal(0, (await b.TryAdmitAsync("alice", default)).Remaining);
    }

    [Fact]
    public async Task A_change_whose_answer_was_lost_after_Firestore_applied_it_counts_once()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, TokensPerWindow = 1000 };
        var faults = new FirestoreFaults();
        var limiter = Instance(options, faults);

        faults.Fail(LimitsCommit, StatusCode.Unavailable, afterFirestoreApplied: true);
        Assert.Equal(4, (await limiter.TryAdmitAsync("alice", default)).Remaining);
        faults.Fail(LimitsCommit, StatusCode.Unavailable, afterFirestoreApplied: true);
        var hold = (await limiter.TryHoldAsync("alice", 300, needed: 1, default)).Hold!;
        Assert.Equal(700, await limiter.TokensRemainingAsync("alice", default));
        faults.Fail(LimitsCommit, StatusCode.Unavailable, afterFirestoreApplied: true);
        await hold.SettleAsync(200);

        Assert.Equal(3, faults.Injected);
        Assert.Equal(800, await limiter.TokensRemainingAsync("alice", default)); // 200 spent once, the hold gone once
        Assert.Equal(3, (await limiter.TryAdmitAsync("alice", default)).Remaining); // one request, not two
    }

    [Fact]
    public async Task A_hold_whose_instance_died_is_freed_after_its_lifetime()
    {
        var options = new LimitOptions { TokensPerWindow = 1000, HoldLifetimeMinutes = 10 };
        var (dead, alive) = (Instance(options), Instance(options));
        Assert.Equal(900, (await dead.TryHoldAsync("alice", 900, needed: 1, default)).Hold!.Tokens); // never settled

        Assert.Equal(100, (await alive.TryHoldAsync("alice", 500, needed: 200, default)).Available);
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(500, (await alive.TryHoldAsync("alice", 500, needed: 200, default)).Hold!.Tokens);
    }

    [Fact]
    public async Task Firestore_down_refuses_admission_as_the_store_unavailable_and_a_settlement_it_missed_is_logged()
    {
        var options = new LimitOptions { TokensPerWindow = 1000 };
        var faults = new FirestoreFaults();
        var logs = new FakeLogCollector();
        var limiter = Instance(options, faults, new FakeLogger<UserLimiter>(logs));

        faults.Fail(LimitsRead, StatusCode.Unavailable, times: 1000);
        await Assert.ThrowsAsync<ChatStoreUnavailableException>(() => limiter.TryAdmitAsync("alice", default));
        faults.Heal();

        var hold = (await limiter.TryHoldAsync("alice", 600, needed: 1, default)).Hold!;
        faults.Fail(LimitsCommit, StatusCode.PermissionDenied, times: 1000);
        await hold.SettleAsync(100); // does not throw: the run ends all the same
        faults.Heal();

        var logged = Assert.Single(logs.GetSnapshot());
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Contains("Could not settle", logged.Message);
        Assert.Equal(400, await limiter.TokensRemainingAsync("alice", default)); // the hold stands until it expires
    }

    [Theory]
    [InlineData("alice", "alice")]
    [InlineData("auth0|5f7c/8e", "sha256~")]
    public async Task A_users_document_is_named_by_their_id_or_its_hash_when_the_id_is_no_safe_document_id(string userId, string documentId)
    {
        var limiter = Instance(new LimitOptions());
        Assert.True((await limiter.TryAdmitAsync(userId, default)).Allowed);

        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var name = $"projects/{_project}/databases/(default)/documents/user_limits/{FirestoreUserUsageStore.DocumentId(userId)}";
        Assert.StartsWith(documentId, FirestoreUserUsageStore.DocumentId(userId), StringComparison.Ordinal);
        var document = await new Firestore.FirestoreClient(channel).GetDocumentAsync(new GetDocumentRequest { Name = name });
        Assert.Equal(userId, document.Fields["user_id"].StringValue);
        Assert.Contains("\"id\":", document.Fields["requests"].StringValue, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_users_document_says_when_it_counts_nothing_any_more_and_one_deleted_meanwhile_starts_anew()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, RequestWindowSeconds = 60, TokensPerWindow = 1000, HoldLifetimeMinutes = 90 };
        var limiter = Instance(options);
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var firestore = new Firestore.FirestoreClient(channel);
        var name = $"projects/{_project}/databases/(default)/documents/user_limits/alice";
        async Task<DateTimeOffset> ExpiresAt() => (await firestore.GetDocumentAsync(new GetDocumentRequest { Name = name })).Fields["expires_at"].TimestampValue.ToDateTimeOffset();

        var start = _time.GetUtcNow();
        await limiter.TryAdmitAsync("alice", default);
        Assert.Equal(start + options.RequestWindow, await ExpiresAt());
        var hold = (await limiter.TryHoldAsync("alice", 300, needed: 1, default)).Hold!;
        Assert.Equal(start + options.HoldLifetime, await ExpiresAt());
        await hold.SettleAsync(100);
        Assert.Equal(start + options.TokenWindow, await ExpiresAt()); // the spend is the last to leave its window

        // Firestore's TTL (or a person) deletes it while this instance still has its copy: the next change starts anew.
        await firestore.DeleteDocumentAsync(new DeleteDocumentRequest { Name = name });
        Assert.Equal(4, (await limiter.TryAdmitAsync("alice", default)).Remaining);
        Assert.Equal(1000, await limiter.TokensRemainingAsync("alice", default));
    }

    [Fact]
    public async Task Two_chat_API_instances_on_one_Firestore_share_a_users_request_window()
    {
        var settings = new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = _project, ["Limits:RequestsPerWindow"] = "2" };
        await using var first = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        await using var second = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);

        async Task<HttpResponseMessage> Chat(ChatApiHost host)
        {
            var client = await ChatApiClient.SignInAsync(host.Address, "shared-user");
            var response = await client.PostChatAsync(new { message = "hello" });
            await response.Content.LoadIntoBufferAsync(); // the whole stream: the turn has ended
            return response;
        }

        Assert.Equal(HttpStatusCode.OK, (await Chat(first)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Chat(second)).StatusCode);
        var refused = await Chat(first);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("rate-limited", (await refused.Content.ReadFromJsonAsync<Dictionary<string, object>>())!["code"].ToString());
        Assert.Equal("0", refused.Headers.GetValues("RateLimit-Remaining").Single());
    }
}
