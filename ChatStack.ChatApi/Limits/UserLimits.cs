using System.Collections.Concurrent;

namespace ChatStack.ChatApi.Limits;

/// <summary>Per-user limits (section <c>Limits</c>).</summary>
internal sealed class LimitOptions
{
    public const string Section = "Limits";

    /// <summary>Chat requests a user may start per <see cref="RequestWindowSeconds"/>; 0 refuses every request (a blocked account).</summary>
    public int RequestsPerWindow { get; set; } = 60;

    public double RequestWindowSeconds { get; set; } = 60;

    /// <summary>Tokens a user may spend over the rolling <see cref="TokenWindowHours"/>.</summary>
    public long TokensPerWindow { get; set; } = 500_000;

    public double TokenWindowHours { get; set; } = 24;

    /// <summary>Limits for particular user ids (<c>Limits:Users:{userId}:RequestsPerWindow</c>), e.g. a tighter one for a shared demo account.</summary>
    public Dictionary<string, UserLimitOverride> Users { get; set; } = new(StringComparer.Ordinal);

    public int RequestsFor(string userId) => Users.GetValueOrDefault(userId)?.RequestsPerWindow ?? RequestsPerWindow;

    public long TokensFor(string userId) => Users.GetValueOrDefault(userId)?.TokensPerWindow ?? TokensPerWindow;

    /// <summary>Refuses settings that would fail on the first request instead of at start-up.</summary>
    public LimitOptions Validated()
    {
        var errors = new List<string>();
        if (RequestWindowSeconds is not > 0 || TokenWindowHours is not > 0)
        {
            errors.Add($"{Section}:RequestWindowSeconds and {Section}:TokenWindowHours must be positive");
        }
        foreach (var (user, requests, tokens) in Users.Select(u => ($"{Section}:Users:{u.Key}:", u.Value.RequestsPerWindow, u.Value.TokensPerWindow))
            .Prepend(($"{Section}:", RequestsPerWindow, TokensPerWindow)))
        {
            if (requests < 0 || tokens < 0)
            {
                errors.Add($"{user}RequestsPerWindow and {user}TokensPerWindow must not be negative (0 blocks)");
            }
        }
        return errors.Count == 0 ? this : throw new InvalidOperationException($"Invalid limits: {string.Join("; ", errors)}.");
    }
}

/// <summary>One user's limits; what is not set comes from the defaults. The windows are the same for everyone.</summary>
internal sealed class UserLimitOverride
{
    public int? RequestsPerWindow { get; set; }

    public long? TokensPerWindow { get; set; }
}

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

/// <summary>
/// Request rate and token quota per user over rolling windows, checked before the model is called. A run holds its
/// budget from admission until it ends (<see cref="TokenHold"/>), so runs in progress at the same time cannot spend
/// the same tokens twice. In memory, per instance: with several replicas each enforces its own share (a shared store
/// is the next step).
/// </summary>
internal sealed class UserLimiter(LimitOptions options, TimeProvider time, Telemetry.ChatMetrics? metrics = null)
{
    /// <summary>When to come back if the quota is short only because of the user's runs in progress: they end within seconds.</summary>
    public static readonly TimeSpan HeldRetryAfter = TimeSpan.FromSeconds(5);

    // Users with nothing left in either window are dropped this often, so a long-running instance does not keep an
    // entry for every user it ever served.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, UserUsage> _users = new(StringComparer.Ordinal);
    private long _lastSweepTicks = time.GetUtcNow().UtcTicks;

    private TimeSpan RequestWindow => TimeSpan.FromSeconds(options.RequestWindowSeconds);

    private TimeSpan TokenWindow => TimeSpan.FromHours(options.TokenWindowHours);

    /// <summary>Counts a 429 in <c>chatstack.rate_limit.rejections</c>, by reason.</summary>
    public void RecordRejection(string code) =>
        metrics?.RateLimitRejections.Add(1, new KeyValuePair<string, object?>(Telemetry.ChatMetricNames.LimitReason, code));

    /// <summary>Admits a request (and counts it) or says why not.</summary>
    public LimitDecision TryAdmit(string userId)
    {
        var now = time.GetUtcNow();
        SweepIfDue(now);
        var requestLimit = options.RequestsFor(userId);
        var tokenLimit = options.TokensFor(userId);
        using var locked = Lock(userId, now);
        var usage = locked.Usage;
        if (usage.Spent >= tokenLimit)
        {
            // Back when enough of the oldest spending has left the window to be under the quota again.
            var retry = TimeUntilBelow(usage.Tokens, usage.Spent - tokenLimit + 1, TokenWindow, now);
            RecordRejection(LimitDecision.QuotaExhausted);
            // The RateLimit headers describe the request window on every answer; the quota is in the problem.
            return Standing(usage, requestLimit, now) with { Allowed = false, Code = LimitDecision.QuotaExhausted, RetryAfter = retry, QuotaTokens = tokenLimit };
        }

        if (usage.Requests.Count >= requestLimit)
        {
            // A limit of 0 (a blocked account) has no oldest request to wait for.
            var retry = usage.Requests.First is { } oldest ? oldest.Value + RequestWindow - now : RequestWindow;
            RecordRejection(LimitDecision.RateLimited);
            return new LimitDecision(false, LimitDecision.RateLimited, requestLimit, 0, retry, Positive(retry));
        }

        var slot = usage.Requests.AddLast(now);
        return Standing(usage, requestLimit, now) with { Slot = new RequestSlot(this, userId, slot) };
    }

    /// <summary>The request window as it stands: what the RateLimit headers say.</summary>
    private LimitDecision Standing(UserUsage usage, int requestLimit, DateTimeOffset now) =>
        new(true, null, requestLimit, Math.Max(0, requestLimit - usage.Requests.Count),
            usage.Requests.First is { } oldest ? Positive(oldest.Value + RequestWindow - now) : TimeSpan.Zero, null);

    private LimitDecision Release(string userId, LinkedListNode<DateTimeOffset> slot)
    {
        var now = time.GetUtcNow();
        using var locked = Lock(userId, now);
        var usage = locked.Usage;
        if (slot.List == usage.Requests) // not already given back, nor left the window (or with it, the user's entry)
        {
            usage.Requests.Remove(slot);
        }

        return Standing(usage, options.RequestsFor(userId), now);
    }

    /// <summary>Tokens the user may still hold for a new run: the quota less what was spent in the window and what runs in progress hold.</summary>
    public long TokensRemaining(string userId)
    {
        using var locked = Lock(userId, time.GetUtcNow());
        var usage = locked.Usage;
        return Math.Max(0, options.TokensFor(userId) - usage.Spent - usage.Held);
    }

    /// <summary>
    /// Holds up to <paramref name="wanted"/> tokens for a run, or refuses when fewer than <paramref name="needed"/> are
    /// left. The hold is the run's budget: settle it with what the run spent (<see cref="TokenHold.Settle"/>).
    /// </summary>
    public TokenHoldDecision TryHold(string userId, long wanted, long needed)
    {
        var now = time.GetUtcNow();
        var limit = options.TokensFor(userId);
        using var locked = Lock(userId, now);
        var usage = locked.Usage;
        var available = Math.Max(0, limit - usage.Spent - usage.Held);
        if (available < needed)
        {
            // Held tokens come back when the runs holding them end; spent ones only as they leave the window.
            var retry = limit - usage.Spent >= needed
                ? HeldRetryAfter
                : TimeUntilBelow(usage.Tokens, usage.Spent - (limit - needed), TokenWindow, now);
            RecordRejection(LimitDecision.QuotaExhausted);
            return new TokenHoldDecision(null, limit, available, usage.Held, retry);
        }

        var tokens = Math.Min(wanted, available);
        usage.Held += tokens;
        return new TokenHoldDecision(new TokenHold(this, userId, tokens), limit, available, usage.Held - tokens, TimeSpan.Zero);
    }

    /// <summary>Users with an entry: those with requests, spending or holds in their windows (and, until the next sweep, some without).</summary>
    internal int TrackedUsers => _users.Count;

    private void Settle(string userId, long held, long spent)
    {
        var now = time.GetUtcNow();
        using var locked = Lock(userId, now);
        var usage = locked.Usage;
        usage.Held -= held;
        if (spent > 0)
        {
            usage.Tokens.Enqueue((now, spent));
            usage.Spent += spent;
        }
    }

    /// <summary>The user's entry, locked until the result is disposed, and pruned; never one a sweep has just dropped.</summary>
    private LockedUsage Lock(string userId, DateTimeOffset now)
    {
        while (true)
        {
            var usage = _users.GetOrAdd(userId, _ => new UserUsage());
            Monitor.Enter(usage);
            if (!usage.Dropped)
            {
                usage.Prune(now - RequestWindow, now - TokenWindow);
                return new LockedUsage(usage);
            }

            Monitor.Exit(usage);
        }
    }

    private readonly ref struct LockedUsage(UserUsage usage)
    {
        public UserUsage Usage => usage;

        public void Dispose() => Monitor.Exit(usage);
    }

    private void SweepIfDue(DateTimeOffset now)
    {
        var last = Interlocked.Read(ref _lastSweepTicks);
        if (now.UtcTicks - last < SweepInterval.Ticks || Interlocked.CompareExchange(ref _lastSweepTicks, now.UtcTicks, last) != last)
        {
            return;
        }

        foreach (var (userId, usage) in _users)
        {
            lock (usage)
            {
                usage.Prune(now - RequestWindow, now - TokenWindow);
                if (usage.Requests.Count == 0 && usage.Tokens.Count == 0 && usage.Held == 0)
                {
                    // Marked under its lock, so a caller that fetched it before the removal takes a new entry instead.
                    usage.Dropped = true;
                    _users.TryRemove(new KeyValuePair<string, UserUsage>(userId, usage));
                }
            }
        }
    }

    private static TimeSpan TimeUntilBelow(Queue<(DateTimeOffset At, long Tokens)> spent, long mustExpire, TimeSpan window, DateTimeOffset now)
    {
        long expired = 0;
        foreach (var (at, tokens) in spent)
        {
            expired += tokens;
            if (expired >= mustExpire)
            {
                return Positive(at + window - now);
            }
        }

        return window;
    }

    private static TimeSpan Positive(TimeSpan span) => span < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : span;

    private sealed class UserUsage
    {
        /// <summary>Admitted requests, oldest first; a list, so one that failed on our side can be taken out.</summary>
        public LinkedList<DateTimeOffset> Requests { get; } = new();

        public Queue<(DateTimeOffset At, long Tokens)> Tokens { get; } = new();

        /// <summary>The sum of <see cref="Tokens"/>, kept as they come and go rather than summed per request.</summary>
        public long Spent { get; set; }

        /// <summary>Tokens held by runs in progress.</summary>
        public long Held { get; set; }

        /// <summary>Removed by a sweep: a caller holding it must take the user's new entry.</summary>
        public bool Dropped { get; set; }

        public void Prune(DateTimeOffset requestsBefore, DateTimeOffset tokensBefore)
        {
            while (Requests.First is { } oldest && oldest.Value <= requestsBefore)
            {
                Requests.RemoveFirst();
            }

            while (Tokens.Count > 0 && Tokens.Peek().At <= tokensBefore)
            {
                Spent -= Tokens.Dequeue().Tokens;
            }
        }
    }

    /// <summary>
    /// An admitted request's place in the request window. Given back when the request fails on our side before its
    /// answer starts (the store down or refusing): a user retrying through an outage must not lock themselves out.
    /// </summary>
    public sealed class RequestSlot
    {
        private readonly UserLimiter _limiter;
        private readonly string _userId;
        private readonly LinkedListNode<DateTimeOffset> _slot;

        internal RequestSlot(UserLimiter limiter, string userId, LinkedListNode<DateTimeOffset> slot) => (_limiter, _userId, _slot) = (limiter, userId, slot);

        /// <summary>Frees the slot (once; later calls change nothing) and says where the user's window stands now.</summary>
        public LimitDecision Release() => _limiter.Release(_userId, _slot);
    }

    /// <summary>
    /// Tokens held for one run: its budget. Settled once with what the run spent, which then counts against the quota
    /// and frees the rest; later calls do nothing, so a safety net can settle again after the run's own settlement.
    /// </summary>
    public sealed class TokenHold
    {
        private readonly UserLimiter _limiter;
        private readonly string _userId;
        private int _settled;

        internal TokenHold(UserLimiter limiter, string userId, long tokens) => (_limiter, _userId, Tokens) = (limiter, userId, tokens);

        public long Tokens { get; }

        public void Settle(long spent)
        {
            if (Interlocked.Exchange(ref _settled, 1) == 0)
            {
                _limiter.Settle(_userId, Tokens, spent);
            }
        }
    }
}

/// <summary>A run's hold on the token quota, or, when the quota is short, the quota, what is left, what runs in progress hold, and when to come back.</summary>
internal sealed record TokenHoldDecision(UserLimiter.TokenHold? Hold, long Quota, long Available, long HeldByOthers, TimeSpan RetryAfter);
