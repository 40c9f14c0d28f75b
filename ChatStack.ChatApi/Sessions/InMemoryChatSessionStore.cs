using System.Collections.Concurrent;
using ChatStack.ChatApi.DualWrite;

namespace ChatStack.ChatApi.Sessions;

/// <summary>
/// Sessions in this process's memory, for <c>ENABLE_FIRESTORE_WRITE=false</c>: chats keep their context for as long
/// as the process lives, and each message's outbox records go to the in-memory outbox with it. Holds at most
/// <see cref="Capacity"/> sessions, forgetting the least recently updated. One process: the turns' claims on their
/// sessions are the stream registry's alone, so the <see cref="TurnLease"/> writes do nothing here.
/// </summary>
internal sealed class InMemoryChatSessionStore(MemoryOutbox? outbox = null) : IChatSessionStore
{
    public const int Capacity = 10_000;

    private readonly ConcurrentDictionary<string, ChatSession> _sessions = new();
    private readonly ConcurrentDictionary<string, List<ChatMessageRecord>> _messages = new();

    public Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken) =>
        Task.FromResult(_sessions.TryGetValue(sessionId, out var s) ? s : null);

    private void Create(ChatSession session)
    {
        if (_sessions.Count >= Capacity && _sessions.Values.MinBy(s => s.UpdatedAt) is { } oldest)
        {
            _sessions.TryRemove(oldest.Id, out _);
            _messages.TryRemove(oldest.Id, out _);
        }

        _sessions[session.Id] = session;
    }

    public Task<ChatSessionPage> ListSessionsAsync(string userId, int limit, SessionCursor? after, CancellationToken cancellationToken)
    {
        var sessions = _sessions.Values.Where(s => s.UserId == userId)
            .OrderByDescending(s => s.UpdatedAt).ThenByDescending(s => s.Id, StringComparer.Ordinal)
            .SkipWhile(s => after is not null && (s.UpdatedAt > after.UpdatedAt || (s.UpdatedAt == after.UpdatedAt && string.CompareOrdinal(s.Id, after.SessionId) >= 0)))
            .Take(limit + 1).ToList();
        return Task.FromResult(sessions.Count > limit
            ? new ChatSessionPage(sessions[..limit], new SessionCursor(sessions[limit - 1].UpdatedAt, sessions[limit - 1].Id).Encode())
            : new ChatSessionPage(sessions, null));
    }

    public Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<OutboxRecord> records, RunUsage? usage, ChatSession? newSession,
        TurnChange? turn, SaveWait wait, CancellationToken cancellationToken)
    {
        if (newSession is not null)
        {
            Create(newSession);
        }

        var messages = _messages.GetOrAdd(sessionId, _ => []);
        lock (messages)
        {
            messages.Add(message);
        }

        outbox?.Add(records);
        return usage is null ? Task.CompletedTask : AddUsageAsync(sessionId, usage, null, cancellationToken);
    }

    public Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken)
    {
        if (!_messages.TryGetValue(sessionId, out var messages))
        {
            return Task.FromResult<IReadOnlyList<ChatMessageRecord>>([]);
        }

        lock (messages)
        {
            return Task.FromResult<IReadOnlyList<ChatMessageRecord>>(messages.ToList());
        }
    }

    public Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken)
    {
        if (!_messages.TryGetValue(sessionId, out var messages))
        {
            return Task.FromResult<IReadOnlyList<ChatMessageRecord>>([]);
        }

        lock (messages)
        {
            return Task.FromResult<IReadOnlyList<ChatMessageRecord>>(messages
                .Where(m => after is null || string.CompareOrdinal(m.Id, after) > 0)
                .Take(limit)
                .ToList());
        }
    }

    public Task AddUsageAsync(string sessionId, RunUsage usage, TurnLease? giveUp, CancellationToken cancellationToken)
    {
        Update(sessionId, s => s with
        {
            PromptTokens = s.PromptTokens + usage.PromptTokens,
            CompletionTokens = s.CompletionTokens + usage.CompletionTokens,
            TotalTokens = s.TotalTokens + usage.PromptTokens + usage.CompletionTokens,
            MessageCount = s.MessageCount + usage.Messages,
            UpdatedAt = usage.At,
        });
        return Task.CompletedTask;
    }

    public Task ClaimTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task GiveUpTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Update(sessionId, s => s with { Summary = summary, SummaryThroughMessageId = throughMessageId, UpdatedAt = now });
        return Task.CompletedTask;
    }

    public Task<bool> RenameSessionAsync(string sessionId, string title, CancellationToken cancellationToken)
    {
        Update(sessionId, s => s with { Title = title });
        return Task.FromResult(_sessions.ContainsKey(sessionId));
    }

    public Task DeleteSessionAsync(string sessionId, CancellationToken cancellationToken)
    {
        _sessions.TryRemove(sessionId, out _);
        _messages.TryRemove(sessionId, out _);
        return Task.CompletedTask;
    }

    // A session forgotten mid-run is not an error of the run: its last writes simply have nowhere to go.
    private void Update(string sessionId, Func<ChatSession, ChatSession> change)
    {
        while (_sessions.TryGetValue(sessionId, out var current) && !_sessions.TryUpdate(sessionId, change(current), current))
        {
        }
    }
}
