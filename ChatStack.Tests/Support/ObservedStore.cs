using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Sessions;

namespace ChatStack.Tests.Support;

/// <summary>
/// The real store with seams for tests: it records the history reads a turn makes (where each starts and how many
/// it returned) and the message commits, fails the next read or commit on demand (as when Firestore drops between
/// two calls), and holds deletes until <see cref="DeleteGate"/> opens (a slow delete).
/// </summary>
internal sealed class ObservedStore(IChatSessionStore inner) : IChatSessionStore
{
    public volatile bool FailNextHistoryRead;

    public System.Collections.Concurrent.ConcurrentQueue<(string? After, int Returned)> Reads { get; } = new();

    /// <summary>Fails the next message commit, as when Firestore drops before it.</summary>
    public volatile bool FailNextAppend;

    /// <summary>The message commits: the message's role, and whether the commit also created its session.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(string Role, bool CreatedSession)> Appends { get; } = new();

    public async Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken)
    {
        FailIfAsked();
        var messages = await inner.ListMessagesAsync(sessionId, cancellationToken);
        Reads.Enqueue((null, messages.Count));
        return messages;
    }

    public async Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken)
    {
        FailIfAsked();
        var messages = await inner.ListMessagesAsync(sessionId, after, limit, cancellationToken);
        Reads.Enqueue((after, messages.Count));
        return messages;
    }

    private void FailIfAsked()
    {
        if (FailNextHistoryRead)
        {
            FailNextHistoryRead = false;
            throw new ChatStoreUnavailableException("Firestore went away.", new IOException("connection reset"));
        }
    }

    public Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken) => inner.GetSessionAsync(sessionId, cancellationToken);

    public Task<ChatSessionPage> ListSessionsAsync(string userId, int limit, SessionCursor? after, CancellationToken cancellationToken) =>
        inner.ListSessionsAsync(userId, limit, after, cancellationToken);

    public Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<OutboxRecord> outbox, RunUsage? usage, ChatSession? newSession,
        TurnChange? turn, SaveWait wait, CancellationToken cancellationToken)
    {
        if (FailNextAppend)
        {
            FailNextAppend = false;
            throw new ChatStoreUnavailableException("Firestore went away.", new IOException("connection reset"));
        }

        Appends.Enqueue((message.Role, newSession is not null));
        return inner.AppendMessageAsync(sessionId, message, outbox, usage, newSession, turn, wait, cancellationToken);
    }

    public Task AddUsageAsync(string sessionId, RunUsage usage, TurnLease? giveUp, CancellationToken cancellationToken) => inner.AddUsageAsync(sessionId, usage, giveUp, cancellationToken);

    public Task GiveUpTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.GiveUpTurnAsync(sessionId, lease, cancellationToken);

    public Task ClaimTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.ClaimTurnAsync(sessionId, lease, cancellationToken);

    public Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.RenewTurnAsync(sessionId, lease, cancellationToken);

    public Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.SetSummaryAsync(sessionId, summary, throughMessageId, now, cancellationToken);

    public Task<bool> RenameSessionAsync(string sessionId, string title, CancellationToken cancellationToken) => inner.RenameSessionAsync(sessionId, title, cancellationToken);

    /// <summary>Deletes wait for this; it starts open.</summary>
    public TaskCompletionSource DeleteGate { get; set; } = Opened();

    /// <summary>Set when a delete has reached the store and waits at <see cref="DeleteGate"/>.</summary>
    public TaskCompletionSource DeleteStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task DeleteSessionAsync(string sessionId, CancellationToken cancellationToken)
    {
        DeleteStarted.TrySetResult();
        await DeleteGate.Task.WaitAsync(cancellationToken);
        await inner.DeleteSessionAsync(sessionId, cancellationToken);
    }

    private static TaskCompletionSource Opened()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }
}
