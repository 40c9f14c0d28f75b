using System.Collections.Concurrent;

namespace ChatStack.ChatApi.Limits;

/// <summary>
/// The windows in this instance's memory: exact, no round trip, and per instance (with several, each enforces the
/// limits on its own). Used with Firestore writes off, or when <c>Limits:Store</c> says <c>Memory</c>.
/// </summary>
internal sealed class MemoryUserUsageStore(LimitOptions options, TimeProvider time) : IUserUsageStore
{
    // Users with nothing left in either window are dropped this often, so a long-running instance does not keep an
    // entry for every user it ever served.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, Entry> _users = new(StringComparer.Ordinal);
    private long _lastSweepTicks = time.GetUtcNow().UtcTicks;

    public TimeSpan SpendResolution => TimeSpan.Zero;

    public TimeSpan? HoldLifetime => null;

    /// <summary>Users with an entry: those with requests, spending or holds in their windows (and, until the next sweep, some without).</summary>
    internal int TrackedUsers => _users.Count;

    public Task<T> UpdateAsync<T>(string userId, Func<UserUsage, T> change, CancellationToken cancellationToken)
    {
        SweepIfDue();
        while (true)
        {
            var entry = _users.GetOrAdd(userId, _ => new Entry());
            lock (entry)
            {
                // Never one a sweep has just dropped: a change to it would be lost.
                if (!entry.Dropped)
                {
                    return Task.FromResult(change(entry.Usage));
                }
            }
        }
    }

    private void SweepIfDue()
    {
        var now = time.GetUtcNow();
        var last = Interlocked.Read(ref _lastSweepTicks);
        if (now.UtcTicks - last < SweepInterval.Ticks || Interlocked.CompareExchange(ref _lastSweepTicks, now.UtcTicks, last) != last)
        {
            return;
        }

        foreach (var (userId, entry) in _users)
        {
            lock (entry)
            {
                entry.Usage.Prune(now, options);
                if (entry.Usage.IsEmpty)
                {
                    // Marked under its lock, so a caller that fetched it before the removal takes a new entry instead.
                    entry.Dropped = true;
                    _users.TryRemove(new KeyValuePair<string, Entry>(userId, entry));
                }
            }
        }
    }

    private sealed class Entry
    {
        public UserUsage Usage { get; } = new();

        public bool Dropped { get; set; }
    }
}
