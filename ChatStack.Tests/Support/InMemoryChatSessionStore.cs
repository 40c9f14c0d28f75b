using System.Collections.Concurrent;
using ChatStack.ChatApi.Sessions;

namespace ChatStack.Tests.Support;

/// <summary>A fake of the store seam for agent unit tests; Firestore itself is tested through the real emulator.</summary>
internal sealed class InMemoryChatSessionStore : IChatSessionStore
{
    private readonly ConcurrentDictionary<string, ChatSession> _sessions = new();
    private readonly ConcurrentDictionary<string, List<ChatMessageRecord>> _messages = new();

    public IReadOnlyList<ChatMessageRecord> Messages(string sessionId) => _messages.GetValueOrDefault(sessionId) ?? [];

    public ChatSession Session(string sessionId) => _sessions[sessionId];

    public Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken) =>
        Task.FromResult(_sessions.TryGetValue(sessionId, out var s) ? s : null);

    public Task CreateSessionAsync(ChatSession session, CancellationToken cancellationToken)
    {
        _sessions[session.Id] = session;
        return Task.CompletedTask;
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

    public Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<ChatStack.ChatApi.DualWrite.OutboxRecord> outbox, CancellationToken cancellationToken)
    {
        _messages.GetOrAdd(sessionId, _ => []).Add(message);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ChatMessageRecord>>(Messages(sessionId).ToList());

    public Task AddUsageAsync(string sessionId, int promptTokens, int completionTokens, int messages, DateTimeOffset now, CancellationToken cancellationToken)
    {
        _sessions.AddOrUpdate(sessionId, _ => throw new KeyNotFoundException(sessionId), (_, s) => s with
        {
            PromptTokens = s.PromptTokens + promptTokens,
            CompletionTokens = s.CompletionTokens + completionTokens,
            TotalTokens = s.TotalTokens + promptTokens + completionTokens,
            MessageCount = s.MessageCount + messages,
            UpdatedAt = now,
        });
        return Task.CompletedTask;
    }

    public Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        _sessions.AddOrUpdate(sessionId, _ => throw new KeyNotFoundException(sessionId), (_, s) => s with { Summary = summary, SummaryThroughMessageId = throughMessageId });
        return Task.CompletedTask;
    }
}
