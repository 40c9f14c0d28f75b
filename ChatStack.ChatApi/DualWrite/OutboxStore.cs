namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// Where outbox records wait for Pub/Sub: Firestore's <c>outbox</c> collection (durable, written in the message's
/// own commit) or, with the hot path off, this process's memory.
/// </summary>
internal interface IOutboxStore
{
    /// <summary>Whether pending records outlive the process, so shutdown need not wait for them.</summary>
    bool Durable { get; }

    /// <summary>False when a new chat must wait because its events would have nowhere to go.</summary>
    bool HasRoom { get; }

    /// <summary>The oldest pending records; one the store cannot decode it sets aside, never returns or drops.</summary>
    Task<IReadOnlyList<OutboxRecord>> ReadAsync(int limit, CancellationToken cancellationToken);

    /// <summary>Removes records Pub/Sub has accepted.</summary>
    Task RemoveAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken);

    /// <summary>How many records wait, for the outbox depth; a store may stop counting at a cap.</summary>
    Task<long> CountAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The outbox when Firestore writes are off: records wait in memory until Pub/Sub takes them. Bounded: when
/// full, <see cref="HasRoom"/> turns new chats away (503) rather than dropping events already accepted.
/// Lost if the process dies before Pub/Sub is reachable, which is what turning the durable store off means.
/// </summary>
internal sealed class MemoryOutbox(DualWriteOptions options, OutboxSignal signal) : IOutboxStore
{
    private readonly Lock _gate = new();
    private readonly Queue<OutboxRecord> _pending = new();

    public bool Durable => false;

    public bool HasRoom => Count < options.MemoryOutboxCapacity;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Accepts a message's records; never refuses, so a run already under way keeps every event.</summary>
    public void Add(IReadOnlyList<OutboxRecord> records)
    {
        if (records.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var record in records)
            {
                _pending.Enqueue(record);
            }
        }

        signal.Notify();
    }

    public Task<IReadOnlyList<OutboxRecord>> ReadAsync(int limit, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<IReadOnlyList<OutboxRecord>>(_pending.Take(limit).ToList());
        }
    }

    public Task<long> CountAsync(CancellationToken cancellationToken) => Task.FromResult<long>(Count);

    public Task RemoveAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken)
    {
        // Only the relay removes, and always the oldest records it has just read.
        lock (_gate)
        {
            foreach (var record in records)
            {
                if (_pending.TryPeek(out var head) && head.EventId == record.EventId)
                {
                    _pending.Dequeue();
                }
            }
        }

        return Task.CompletedTask;
    }
}
