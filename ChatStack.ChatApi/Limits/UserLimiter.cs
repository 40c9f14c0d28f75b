using ChatStack.ChatApi.Sessions;

namespace ChatStack.ChatApi.Limits;

/// <summary>Why a request was refused, and when to come back; or, admitted, the slot it took.</summary>
internal sealed record LimitDecision(bool Allowed, string? Code, long Limit, long Remaining, TimeSpan Reset, TimeSpan? RetryAfter)
{
    /// <summary>The admitted request's place in the window, to give back if it fails on our side.</summary>
    public UserLimiter.RequestSlot? Slot { get; init; }

    /// <summary>Refused for the token quota: the quota (<see cref="Limit"/> and the others are the request window's).</summary>
    public long? QuotaTokens { get; init; }

    public const string RateLimited = "rate-limited";
    public const string QuotaExhausted = "quota-exhausted";
}

/// <summary>A run's hold on the token quota, or, when the quota is short, the quota, what is left, what runs in progress hold, and when to come back.</summary>
internal sealed record TokenHoldDecision(UserLimiter.TokenHold? Hold, long Quota, long Available, long HeldByOthers, TimeSpan RetryAfter)
{
    /// <summary>The tokens held, before the hold is made an object its run can settle.</summary>
    internal long? Granted { get; init; }
}

/// <summary>
/// Request rate and token quota per user over rolling windows, checked before the model is called. A run holds its
/// budget from admission until it ends (<see cref="TokenHold"/>), so runs in progress at the same time cannot spend
/// the same tokens twice. The windows live in an <see cref="IUserUsageStore"/>: Firestore, shared by every instance,
/// or this instance's memory.
/// </summary>
internal sealed class UserLimiter(LimitOptions options, IUserUsageStore store, TimeProvider time, ILogger<UserLimiter> logger, Telemetry.ChatMetrics? metrics = null)
{
    /// <summary>When to come back if the quota is short only because of the user's runs in progress: they end within seconds.</summary>
    public static readonly TimeSpan HeldRetryAfter = TimeSpan.FromSeconds(5);

    private ILogger Log => logger;

    /// <summary>Counts a 429 in <c>chatstack.rate_limit.rejections</c>, by reason.</summary>
    public void RecordRejection(string code) =>
        metrics?.RateLimitRejections.Add(1, new KeyValuePair<string, object?>(Telemetry.ChatMetricNames.LimitReason, code));

    /// <summary>Admits a request (and counts it) or says why not.</summary>
    public async Task<LimitDecision> TryAdmitAsync(string userId, CancellationToken cancellationToken)
    {
        var id = NewId();
        var decision = await store.UpdateAsync(userId, usage => Admit(usage, userId, id, Prune(usage)), cancellationToken);
        return Admitted(decision, userId, id);
    }

    /// <summary>
    /// Holds up to <paramref name="wanted"/> tokens for a run, or refuses when fewer than <paramref name="needed"/> are
    /// left. The hold is the run's budget: settle it with what the run spent (<see cref="TokenHold.SettleAsync"/>).
    /// </summary>
    public async Task<TokenHoldDecision> TryHoldAsync(string userId, long wanted, long needed, CancellationToken cancellationToken)
    {
        var id = NewId();
        var decision = await store.UpdateAsync(userId, usage => Hold(usage, userId, id, wanted, needed, Prune(usage)), cancellationToken);
        return Held(decision, userId, id);
    }

    /// <summary>
    /// <see cref="TryAdmitAsync"/> and, once admitted, <see cref="TryHoldAsync"/> in one step: one round trip to a
    /// shared store where two would do. A request admitted whose hold is refused keeps its place in the window, as
    /// when the two are asked apart. The hold is null when the request was refused.
    /// </summary>
    public async Task<(LimitDecision Admission, TokenHoldDecision? Quota)> TryAdmitAndHoldAsync(string userId, long wanted, long needed, CancellationToken cancellationToken)
    {
        var (requestId, holdId) = (NewId(), NewId());
        var (admission, quota) = await store.UpdateAsync(userId, usage =>
        {
            var now = Prune(usage);
            var admitted = Admit(usage, userId, requestId, now);
            return (admitted, admitted.Allowed ? Hold(usage, userId, holdId, wanted, needed, now) : null);
        }, cancellationToken);
        return (Admitted(admission, userId, requestId), quota is null ? null : Held(quota, userId, holdId));
    }

    /// <summary>Tokens the user may still hold for a new run: the quota less what was spent in the window and what runs in progress hold.</summary>
    public Task<long> TokensRemainingAsync(string userId, CancellationToken cancellationToken) =>
        store.UpdateAsync(userId, usage =>
        {
            Prune(usage);
            return Math.Max(0, options.TokensFor(userId) - usage.Spent - usage.Held);
        }, cancellationToken);

    private static string NewId() => Guid.NewGuid().ToString("N");

    private DateTimeOffset Prune(UserUsage usage)
    {
        var now = time.GetUtcNow();
        usage.Prune(now, options);
        return now;
    }

    // The rules. Each may run more than once on a shared store (UpdateAsync), so each first looks for its own id.
    private LimitDecision Admit(UserUsage usage, string userId, string id, DateTimeOffset now)
    {
        var requestLimit = options.RequestsFor(userId);
        var tokenLimit = options.TokensFor(userId);
        if (usage.Requests.Exists(r => r.Id == id))
        {
            return Standing(usage, requestLimit, now); // applied by an earlier attempt
        }

        var spent = usage.Spent;
        if (spent >= tokenLimit)
        {
            // Back when enough of the oldest spending has left the window to be under the quota again.
            var retry = TimeUntilBelow(usage.Spends, spent - tokenLimit + 1, now);
            // The RateLimit headers describe the request window on every answer; the quota is in the problem.
            return Standing(usage, requestLimit, now) with { Allowed = false, Code = LimitDecision.QuotaExhausted, RetryAfter = retry, QuotaTokens = tokenLimit };
        }

        if (usage.Requests.Count >= requestLimit)
        {
            // A limit of 0 (a blocked account) has no oldest request to wait for.
            var retry = usage.Requests.Count > 0 ? usage.Requests[0].At + options.RequestWindow - now : options.RequestWindow;
            return new LimitDecision(false, LimitDecision.RateLimited, requestLimit, 0, retry, Positive(retry));
        }

        usage.Requests.Add(new AdmittedRequest(id, now));
        usage.Changed = true;
        return Standing(usage, requestLimit, now);
    }

    private TokenHoldDecision Hold(UserUsage usage, string userId, string id, long wanted, long needed, DateTimeOffset now)
    {
        var limit = options.TokensFor(userId);
        var spent = usage.Spent;
        if (usage.Holds.TryGetValue(id, out var earlier))
        {
            var others = usage.Held - earlier.Tokens; // applied by an earlier attempt
            return new TokenHoldDecision(null, limit, Math.Max(0, limit - spent - others), others, TimeSpan.Zero) { Granted = earlier.Tokens };
        }

        var held = usage.Held;
        var available = Math.Max(0, limit - spent - held);
        if (available < needed)
        {
            // Held tokens come back when the runs holding them end; spent ones only as they leave the window.
            var retry = limit - spent >= needed ? HeldRetryAfter : TimeUntilBelow(usage.Spends, spent - (limit - needed), now);
            return new TokenHoldDecision(null, limit, available, held, retry);
        }

        var tokens = Math.Min(wanted, available);
        usage.Holds[id] = new TokenHeld(tokens, store.HoldLifetime is { } lifetime ? now + lifetime : DateTimeOffset.MaxValue);
        usage.Changed = true;
        return new TokenHoldDecision(null, limit, available, held, TimeSpan.Zero) { Granted = tokens };
    }

    /// <summary>The request window as it stands: what the RateLimit headers say.</summary>
    private LimitDecision Standing(UserUsage usage, int requestLimit, DateTimeOffset now) =>
        new(true, null, requestLimit, Math.Max(0, requestLimit - usage.Requests.Count),
            usage.Requests.Count > 0 ? Positive(usage.Requests[0].At + options.RequestWindow - now) : TimeSpan.Zero, null);

    // Outside the rules, once: a refusal is counted in the metrics, an admission gets the slot it can give back.
    private LimitDecision Admitted(LimitDecision decision, string userId, string id)
    {
        if (decision.Code is { } code)
        {
            RecordRejection(code);
            return decision;
        }

        return decision with { Slot = new RequestSlot(this, userId, id) };
    }

    private TokenHoldDecision Held(TokenHoldDecision decision, string userId, string id)
    {
        if (decision.Granted is not { } granted)
        {
            RecordRejection(LimitDecision.QuotaExhausted);
            return decision;
        }

        return decision with { Hold = new TokenHold(this, userId, id, granted) };
    }

    private Task<LimitDecision> ReleaseAsync(string userId, string id, CancellationToken cancellationToken) =>
        store.UpdateAsync(userId, usage =>
        {
            var now = Prune(usage);
            // Not already given back, nor left the window.
            usage.Changed |= usage.Requests.RemoveAll(r => r.Id == id) > 0;
            return Standing(usage, options.RequestsFor(userId), now);
        }, cancellationToken);

    private Task SettleAsync(string userId, string id, long spent, CancellationToken cancellationToken) =>
        store.UpdateAsync(userId, usage =>
        {
            var now = Prune(usage);
            // Only while the hold stands: gone means settled already (a repeated write), or expired with its instance.
            if (usage.Holds.Remove(id))
            {
                usage.Changed = true;
                if (spent > 0)
                {
                    usage.AddSpend(now, spent, store.SpendResolution);
                }
            }

            return true;
        }, cancellationToken);

    private TimeSpan TimeUntilBelow(List<TokenSpend> spends, long mustExpire, DateTimeOffset now)
    {
        long expired = 0;
        foreach (var (at, tokens) in spends)
        {
            expired += tokens;
            if (expired >= mustExpire)
            {
                return Positive(at + options.TokenWindow - now);
            }
        }

        return options.TokenWindow;
    }

    private static TimeSpan Positive(TimeSpan span) => span < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : span;

    /// <summary>
    /// An admitted request's place in the request window. Given back when the request fails on our side before its
    /// answer starts (the store down or refusing): a user retrying through an outage must not lock themselves out.
    /// </summary>
    public sealed class RequestSlot
    {
        private readonly UserLimiter _limiter;
        private readonly string _userId;
        private readonly string _id;

        internal RequestSlot(UserLimiter limiter, string userId, string id) => (_limiter, _userId, _id) = (limiter, userId, id);

        /// <summary>
        /// Frees the slot (once; later calls change nothing) and says where the user's window stands now; null when the
        /// store could not be reached (the slot then stays taken until it leaves the window).
        /// </summary>
        public async Task<LimitDecision?> ReleaseAsync()
        {
            try
            {
                // Not the request's token: the request is failing, and giving its slot back is what makes the retry pass.
                return await _limiter.ReleaseAsync(_userId, _id, CancellationToken.None);
            }
            catch (Exception e) when (e is ChatStoreUnavailableException or ChatStoreRefusedException)
            {
                _limiter.Log.LogWarning(e, "Could not give back a request slot of user {UserId}; it leaves the window by itself", _userId);
                return null;
            }
        }
    }

    /// <summary>
    /// Tokens held for one run: its budget. Settled once with what the run spent, which then counts against the quota
    /// and frees the rest; later calls do nothing, so a safety net can settle again after the run's own settlement.
    /// </summary>
    public sealed class TokenHold
    {
        private readonly UserLimiter _limiter;
        private readonly string _userId;
        private readonly string _id;
        private int _settled;

        internal TokenHold(UserLimiter limiter, string userId, string id, long tokens) => (_limiter, _userId, _id, Tokens) = (limiter, userId, id, tokens);

        public long Tokens { get; }

        /// <summary>
        /// Counts <paramref name="spent"/> against the quota and frees the rest. Never throws: a store that cannot be
        /// reached is logged, and the hold then expires by itself (its spending is not counted).
        /// </summary>
        public async Task SettleAsync(long spent)
        {
            if (Interlocked.Exchange(ref _settled, 1) != 0)
            {
                return;
            }

            try
            {
                // Not the run's token: a cancelled run still pays what it counted.
                await _limiter.SettleAsync(_userId, _id, spent, CancellationToken.None);
            }
            catch (Exception e) when (e is ChatStoreUnavailableException or ChatStoreRefusedException)
            {
                _limiter.Log.LogError(e, "Could not settle a run's hold of {Held} tokens ({Spent} spent) for user {UserId}; it expires by itself",
                    Tokens, spent, _userId);
            }
        }
    }
}
