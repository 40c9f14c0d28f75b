namespace ChatStack.ChatApi.Limits;

/// <summary>A request admitted in the request window, by the id its admission gave it.</summary>
internal readonly record struct AdmittedRequest(string Id, DateTimeOffset At);

/// <summary>Tokens spent at a time (settled runs; in a shared store, those settled close together add up in one entry).</summary>
internal readonly record struct TokenSpend(DateTimeOffset At, long Tokens);

/// <summary>Tokens a run in progress holds, until it settles or, if its instance died, until the hold expires.</summary>
internal readonly record struct TokenHeld(long Tokens, DateTimeOffset ExpiresAt);

/// <summary>
/// One user's standing in both windows: what <see cref="UserLimiter"/> decides from and changes, and what a
/// <see cref="IUserUsageStore"/> keeps. Every change is keyed by an id its caller chose once, so a store may apply the
/// same change again (a write whose outcome it could not tell, contention) and it counts once.
/// </summary>
internal sealed class UserUsage
{
    /// <summary>Admitted requests, oldest first.</summary>
    public List<AdmittedRequest> Requests { get; } = [];

    /// <summary>Spent tokens, oldest first.</summary>
    public List<TokenSpend> Spends { get; } = [];

    public Dictionary<string, TokenHeld> Holds { get; } = new(StringComparer.Ordinal);

    /// <summary>Whether anything changed since it was read: a store writes only then.</summary>
    public bool Changed { get; set; }

    public long Spent
    {
        get
        {
            long sum = 0;
            foreach (var spend in Spends)
            {
                sum += spend.Tokens;
            }

            return sum;
        }
    }

    public long Held
    {
        get
        {
            long sum = 0;
            foreach (var hold in Holds.Values)
            {
                sum += hold.Tokens;
            }

            return sum;
        }
    }

    public bool IsEmpty => Requests.Count == 0 && Spends.Count == 0 && Holds.Count == 0;

    /// <summary>When every entry will have left its window (or expired): from then on the usage counts nothing, as if it were empty.</summary>
    public DateTimeOffset Expiry(LimitOptions options)
    {
        var last = DateTimeOffset.UnixEpoch;
        foreach (var request in Requests)
        {
            last = Max(last, request.At + options.RequestWindow);
        }

        foreach (var spend in Spends)
        {
            last = Max(last, spend.At + options.TokenWindow);
        }

        foreach (var hold in Holds.Values)
        {
            last = Max(last, hold.ExpiresAt);
        }

        return last;

        static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
    }

    /// <summary>Drops what has left its window, and holds whose instance never settled them.</summary>
    public void Prune(DateTimeOffset now, LimitOptions options)
    {
        var requestsBefore = now - options.RequestWindow;
        var tokensBefore = now - options.TokenWindow;
        Changed |= Requests.RemoveAll(r => r.At <= requestsBefore) > 0;
        Changed |= Spends.RemoveAll(s => s.At <= tokensBefore) > 0;
        foreach (var (id, hold) in Holds)
        {
            if (hold.ExpiresAt <= now)
            {
                Holds.Remove(id);
                Changed = true;
            }
        }
    }

    /// <summary>
    /// Records a spend. Within <paramref name="resolution"/> of the last one it is added to it, dated now (it leaves
    /// the window a little late, never early), so a shared document keeps a bounded number of entries.
    /// </summary>
    public void AddSpend(DateTimeOffset now, long tokens, TimeSpan resolution)
    {
        if (Spends.Count > 0 && now - Spends[^1].At < resolution)
        {
            Spends[^1] = new TokenSpend(now, Spends[^1].Tokens + tokens);
        }
        else
        {
            Spends.Add(new TokenSpend(now, tokens));
        }

        Changed = true;
    }
}

/// <summary>Where the users' windows are kept: this instance's memory, or a store every instance shares.</summary>
internal interface IUserUsageStore
{
    /// <summary>
    /// Spends close together are kept as one entry dated by the latest (zero: each its own), which bounds a shared
    /// document's size; a quota's Retry-After can then be up to this much later.
    /// </summary>
    TimeSpan SpendResolution { get; }

    /// <summary>
    /// How long a hold stands unless its run settles it: in a shared store its instance may die first; null in memory,
    /// where the hold dies with the run that would settle it.
    /// </summary>
    TimeSpan? HoldLifetime { get; }

    /// <summary>
    /// Applies <paramref name="change"/> to the user's usage as one atomic step against every other change of it (on
    /// every instance, for a shared store) and returns what it returned. It may run more than once (contention): it
    /// must decide from the usage it is given alone, and mark it <see cref="UserUsage.Changed"/> when it changed it.
    /// A shared store that cannot be reached throws the session store's exceptions (503 or 500 for a request).
    /// </summary>
    Task<T> UpdateAsync<T>(string userId, Func<UserUsage, T> change, CancellationToken cancellationToken);
}
