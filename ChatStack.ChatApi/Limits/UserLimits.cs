using System.Collections.Concurrent;

namespace ChatStack.ChatApi.Limits;

/// <summary>Per-user limits (section <c>Limits</c>).</summary>
internal sealed class LimitOptions
{
    public const string Section = "Limits";

    /// <summary>Chat requests a user may start per <see cref="RequestWindowSeconds"/>.</summary>
    public int RequestsPerWindow { get; set; } = 30;

    public double RequestWindowSeconds { get; set; } = 60;

    /// <summary>Tokens a user may spend over the rolling <see cref="TokenWindowHours"/>.</summary>
    public long TokensPerWindow { get; set; } = 500_000;

    public double TokenWindowHours { get; set; } = 24;

    /// <summary>Limits for particular user ids (<c>Limits:Users:{userId}:RequestsPerWindow</c>), e.g. a tighter one for a shared demo account.</summary>
    public Dictionary<string, UserLimitOverride> Users { get; set; } = new(StringComparer.Ordinal);

    public int RequestsFor(string userId) => Users.GetValueOrDefault(userId)?.RequestsPerWindow ?? RequestsPerWindow;

    public long TokensFor(string userId) => Users.GetValueOrDefault(userId)?.TokensPerWindow ?? TokensPerWindow;
}

/// <summary>One user's limits; what is not set comes from the defaults. The windows are the same for everyone.</summary>
internal sealed class UserLimitOverride
{
    public int? RequestsPerWindow { get; set; }

    public long? TokensPerWindow { get; set; }
}

/// <summary>Why a request was refused, and when to come back.</summary>
internal sealed record LimitDecision(bool Allowed, string? Code, long Limit, long Remaining, TimeSpan Reset, TimeSpan? RetryAfter)
{
    public const string RateLimited = "rate-limited";
    public const string QuotaExhausted = "quota-exhausted";
}

/// <summary>
/// Request rate and token quota per user over rolling windows, checked before the model is called. In memory,
/// per instance: with several replicas each enforces its own share (a shared store is the next step).
/// </summary>
internal sealed class UserLimiter(LimitOptions options, TimeProvider time, Telemetry.ChatMetrics? metrics = null)
{
    private readonly ConcurrentDictionary<string, UserUsage> _users = new(StringComparer.Ordinal);

    private TimeSpan RequestWindow => TimeSpan.FromSeconds(options.RequestWindowSeconds);

    private TimeSpan TokenWindow => TimeSpan.FromHours(options.TokenWindowHours);

    /// <summary>Counts a 429 in <c>chatstack.rate_limit.rejections</c>, by reason.</summary>
    public void RecordRejection(string code) =>
        metrics?.RateLimitRejections.Add(1, new KeyValuePair<string, object?>(Telemetry.ChatMetricNames.LimitReason, code));

    /// <summary>Admits a request (and counts it) or says why not.</summary>
    public LimitDecision TryAdmit(string userId)
    {
        var now = time.GetUtcNow();
        var requestLimit = options.RequestsFor(userId);
        var tokenLimit = options.TokensFor(userId);
        var usage = _users.GetOrAdd(userId, _ => new UserUsage());
        lock (usage)
        {
            usage.Prune(now - RequestWindow, now - TokenWindow);
            var tokensUsed = usage.Tokens.Sum(t => t.Tokens);
            if (tokensUsed >= tokenLimit)
            {
                // Back when enough of the oldest spending has left the window to be under the quota again.
                var retry = TimeUntilBelow(usage.Tokens, tokensUsed - tokenLimit + 1, TokenWindow, now);
                RecordRejection(LimitDecision.QuotaExhausted);
                return new LimitDecision(false, LimitDecision.QuotaExhausted, tokenLimit, 0, retry, retry);
            }

            if (usage.Requests.Count >= requestLimit)
            {
                var retry = usage.Requests.Peek() + RequestWindow - now;
                RecordRejection(LimitDecision.RateLimited);
                return new LimitDecision(false, LimitDecision.RateLimited, requestLimit, 0, retry, Positive(retry));
            }

            usage.Requests.Enqueue(now);
            var reset = usage.Requests.Peek() + RequestWindow - now;
            return new LimitDecision(true, null, requestLimit, requestLimit - usage.Requests.Count, Positive(reset), null);
        }
    }

    /// <summary>Tokens the user may still spend in the current window.</summary>
    public long TokensRemaining(string userId)
    {
        var now = time.GetUtcNow();
        var usage = _users.GetOrAdd(userId, _ => new UserUsage());
        lock (usage)
        {
            usage.Prune(now - RequestWindow, now - TokenWindow);
            return Math.Max(0, options.TokensFor(userId) - usage.Tokens.Sum(t => t.Tokens));
        }
    }

    /// <summary>Records what a finished run spent.</summary>
    public void RecordTokens(string userId, long tokens)
    {
        var usage = _users.GetOrAdd(userId, _ => new UserUsage());
        lock (usage)
        {
            usage.Tokens.Enqueue((time.GetUtcNow(), tokens));
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
        public Queue<DateTimeOffset> Requests { get; } = new();

        public Queue<(DateTimeOffset At, long Tokens)> Tokens { get; } = new();

        public void Prune(DateTimeOffset requestsBefore, DateTimeOffset tokensBefore)
        {
            while (Requests.Count > 0 && Requests.Peek() <= requestsBefore)
            {
                Requests.Dequeue();
            }

            while (Tokens.Count > 0 && Tokens.Peek().At <= tokensBefore)
            {
                Tokens.Dequeue();
            }
        }
    }
}
