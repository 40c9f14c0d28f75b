using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text.Json.Serialization;

namespace ChatStack.ChatApi.Sessions;

/// <summary>A conversation: <c>sessions/{id}</c> in Firestore.</summary>
internal sealed record ChatSession
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("user_id")] public required string UserId { get; init; }
    [JsonPropertyName("title")] public required string Title { get; init; }
    [JsonPropertyName("model")] public required string Model { get; init; }
    [JsonPropertyName("created_at")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("updated_at")] public DateTimeOffset UpdatedAt { get; init; }
    [JsonPropertyName("prompt_tokens")] public long PromptTokens { get; init; }
    [JsonPropertyName("completion_tokens")] public long CompletionTokens { get; init; }
    [JsonPropertyName("total_tokens")] public long TotalTokens { get; init; }
    [JsonPropertyName("message_count")] public long MessageCount { get; init; }

    /// <summary>Summary of the history up to and including <see cref="SummaryThroughMessageId"/>, once compacted.</summary>
    [JsonPropertyName("summary")] public string? Summary { get; init; }
    [JsonPropertyName("summary_through_message_id")] public string? SummaryThroughMessageId { get; init; }
}

/// <summary>One message: <c>sessions/{id}/messages/{messageId}</c>. Ids sort by creation time.</summary>
internal sealed record ChatMessageRecord
{
    [JsonPropertyName("id")] public required string Id { get; init; }

    /// <summary><c>user</c>, <c>assistant</c> or <c>tool</c>.</summary>
    [JsonPropertyName("role")] public required string Role { get; init; }
    [JsonPropertyName("content")] public required string Content { get; init; }
    [JsonPropertyName("tokens")] public int Tokens { get; init; }
    [JsonPropertyName("created_at")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("finish_reason")] public string? FinishReason { get; init; }
    [JsonPropertyName("tool_name")] public string? ToolName { get; init; }
    [JsonPropertyName("tool_arguments")] public string? ToolArguments { get; init; }
    [JsonPropertyName("tool_status")] public string? ToolStatus { get; init; }

    [JsonPropertyName("duration_ms")] public double? DurationMs { get; init; }

    /// <summary>Provider-reported minus counted tokens of the run that wrote this answer, when the provider reported usage.</summary>
    [JsonPropertyName("usage_reconciliation_delta")] public int? ReconciliationDelta { get; init; }

    /// <summary>The failed tool's exception type, for the warehouse when content capture is off; not stored.</summary>
    [JsonIgnore] public string? ToolErrorType { get; init; }

    /// <summary>UTF-8 bytes of the tool's whole result, when <see cref="Content"/> keeps only its start; not stored.</summary>
    [JsonIgnore] public int? ToolResultBytes { get; init; }

    private static long s_lastTicks;

    /// <summary>
    /// Time-ordered, unique, and a safe Firestore document id. Strictly increasing within this process, so two
    /// messages saved in the same clock tick still list in the order they were written.
    /// </summary>
    public static string NewId(DateTimeOffset now)
    {
        long last, next;
        do
        {
            last = Interlocked.Read(ref s_lastTicks);
            next = Math.Max(now.UtcTicks, last + 1);
        }
        while (Interlocked.CompareExchange(ref s_lastTicks, next, last) != last);

        return $"{next:D19}-{Guid.NewGuid().ToString("N")[..8]}";
    }
}

/// <summary>One page of a user's sessions, newest first; <see cref="NextCursor"/> is null on the last page.</summary>
internal sealed record ChatSessionPage(
    [property: JsonPropertyName("sessions")] IReadOnlyList<ChatSession> Sessions,
    [property: JsonPropertyName("next_cursor")] string? NextCursor);

/// <summary>
/// Where a page of sessions ends: the last session's <c>updated_at</c> and id (the id breaks ties), opaque to
/// clients as base64url.
/// </summary>
internal sealed record SessionCursor(DateTimeOffset UpdatedAt, string SessionId)
{
    public string Encode() =>
        Base64Url.EncodeToString(System.Text.Encoding.UTF8.GetBytes($"{UpdatedAt.UtcTicks}:{SessionId}"));

    public static bool TryParse(string? text, Func<string, bool> isSafeId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SessionCursor? cursor)
    {
        cursor = null;
        if (string.IsNullOrEmpty(text) || text.Length > 400 || !Base64Url.IsValid(text))
        {
            return false;
        }

        var parts = System.Text.Encoding.UTF8.GetString(Base64Url.DecodeFromChars(text)).Split(':', 2);
        if (parts.Length != 2 || !long.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ticks)
            || ticks > DateTimeOffset.MaxValue.UtcTicks || !isSafeId(parts[1]))
        {
            return false;
        }

        cursor = new SessionCursor(new DateTimeOffset(ticks, TimeSpan.Zero), parts[1]);
        return true;
    }
}

/// <summary>
/// The store is unreachable, or refused for a passing reason (contention, quota) on every attempt: the API answers 503
/// rather than calling the model with nowhere to keep the answer.
/// </summary>
internal sealed class ChatStoreUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Firestore refused a call for a lasting reason (permission, a document gone or too large, a failed precondition):
/// repeating it would not help. A type of its own so a caller tells the store's refusal from its own failures, such as
/// a model call's, by type rather than by where it happened.
/// </summary>
internal sealed class ChatStoreRefusedException(Grpc.Core.RpcException inner)
    : Exception($"Firestore refused the call with {inner.StatusCode}: {inner.Status.Detail}", inner)
{
    public Grpc.Core.StatusCode StatusCode => inner.StatusCode;

    /// <summary>Firestore's own words.</summary>
    public string Detail => inner.Status.Detail;
}

/// <summary>Firestore has no ready composite index for a query (it is missing, or still building after the provisioner created it).</summary>
internal sealed class ChatStoreIndexMissingException(string firestoreSays, Exception inner) : Exception(firestoreSays, inner);

/// <summary>
/// Another turn holds the session (on this instance or another): its message is not saved, and the request answers
/// 409 turn-in-progress.
/// </summary>
internal sealed class ChatSessionBusyException(string sessionId, string streamId, bool deleting)
    : Exception(deleting ? $"Session '{sessionId}' is being deleted." : $"Session '{sessionId}' is answering another message (stream {streamId}).")
{
    public string SessionId => sessionId;

    /// <summary>The stream of the turn that holds the session.</summary>
    public string StreamId => streamId;

    /// <summary>The session is held by its deletion, not by a turn.</summary>
    public bool Deleting => deleting;
}

/// <summary>
/// A run's hold on its session, shared by every instance: claimed in the commit of the turn's first message, renewed
/// while the run goes on, given up in the commit of its last. A run whose instance died holds it until it expires.
/// </summary>
internal sealed class TurnLease(string streamId, TimeSpan lifetime)
{
    public string StreamId => streamId;

    public TimeSpan Lifetime => lifetime;

    /// <summary>Held by the session's deletion: a message sent meanwhile is told so.</summary>
    public bool Deleting { get; init; }

    /// <summary>Whose turn it is: another instance asked to stop the stream checks it against the caller.</summary>
    public string? UserId { get; init; }

    /// <summary>The instance that runs the turn: where another instance sends a request to stop it.</summary>
    public string? InstanceId { get; init; }

    /// <summary>
    /// How long the turn's stream, once ended, can still be resumed on <see cref="InstanceId"/>: giving the hold up
    /// leaves <c>stream_ends/{streamId}</c> naming the instance for that long, where a resume on another finds it.
    /// </summary>
    public TimeSpan? ResumableFor { get; init; }

    /// <summary>
    /// Whether a turn, by its stream id, ran on this instance and has ended: its hold can be taken over at once. A
    /// turn whose last commit failed (the store down) leaves its hold; this instance's next message to the session
    /// need not wait out its lifetime.
    /// </summary>
    public Func<string, bool>? EndedHere { get; init; }

    /// <summary>The store's version of the hold as this run last wrote or read it (Firestore: the document's update time); null until claimed.</summary>
    public object? Version { get; set; }

    /// <summary>Another turn took the session over (this one's lease had expired): the run no longer writes the hold.</summary>
    public bool Lost { get; set; }
}

/// <summary>What a commit does with the run's <see cref="TurnLease"/>.</summary>
internal readonly record struct TurnChange(TurnLease Lease, bool Release)
{
    public static TurnChange Claim(TurnLease lease) => new(lease, false);

    public static TurnChange GiveUp(TurnLease lease) => new(lease, true);
}

/// <summary>How long a save goes on retrying a store that fails for a moment before it gives up.</summary>
internal enum SaveWait
{
    /// <summary>A request waits on it for its status: a lasting failure is better told quickly, as a 503.</summary>
    Brief,

    /// <summary>What it saves was already streamed and charged: worth a longer wait, which the stream's heartbeats bridge.</summary>
    Long,
}

/// <summary>What a run adds to its session's totals.</summary>
internal sealed record RunUsage(int PromptTokens, int CompletionTokens, int Messages, DateTimeOffset At);

/// <summary>Where sessions and messages are kept.</summary>
internal interface IChatSessionStore
{
    Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>The user's sessions, most recently updated first, starting after <paramref name="after"/>.</summary>
    Task<ChatSessionPage> ListSessionsAsync(string userId, int limit, SessionCursor? after, CancellationToken cancellationToken);

    /// <summary>
    /// Saves a message and, in the same commit, the outbox records that carry it to Pub/Sub, for a run's last
    /// message the run's usage, and for the first message of a conversation its <paramref name="newSession"/>: one
    /// round trip on the hot path where there would be two. Saved exactly once, however often it is retried.
    /// </summary>
    /// <remarks>
    /// With <paramref name="turn"/>, the same commit claims the session for the run (throwing
    /// <see cref="ChatSessionBusyException"/>, nothing saved, when another turn holds it) or gives the claim up.
    /// </remarks>
    Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<DualWrite.OutboxRecord> outbox, RunUsage? usage, ChatSession? newSession,
        TurnChange? turn, SaveWait wait, CancellationToken cancellationToken);

    /// <summary>Messages in creation order.</summary>
    Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>
    /// Up to <paramref name="limit"/> messages in creation order whose ids sort after <paramref name="after"/> (from the
    /// first when null): ids are time-ordered, so a reader pages on with the last id it has.
    /// </summary>
    Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken);

    /// <summary>Adds a run's usage and message count to the session totals, atomically (a run that ends without a message of its own).</summary>
    Task AddUsageAsync(string sessionId, RunUsage usage, TurnLease? giveUp, CancellationToken cancellationToken);

    /// <summary>Holds the session with no message to save (its deletion): <see cref="ChatSessionBusyException"/> when another holds it.</summary>
    Task ClaimTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken);

    /// <summary>Gives up a hold taken with <see cref="ClaimTurnAsync"/>, if it is still this one's.</summary>
    Task GiveUpTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken);

    /// <summary>Extends the run's hold on its session by its lifetime; sets <see cref="TurnLease.Lost"/> when another turn has it.</summary>
    Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken);

    Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sets the session's title; false when there is no such session (any more). Its activity time stays as it was.</summary>
    Task<bool> RenameSessionAsync(string sessionId, string title, CancellationToken cancellationToken);

    /// <summary>Deletes the session, its messages and its hold; a delete cut short leaves a session that deleting again finishes.</summary>
    Task DeleteSessionAsync(string sessionId, CancellationToken cancellationToken);
}

internal static class ChatSessionStoreExtensions
{
    private const int HistoryPageSize = 500;

    /// <summary>
    /// Every message whose id sorts after <paramref name="after"/> (all when null), read page by page: a turn of a
    /// summarized session reads only what follows its summary, not the whole conversation.
    /// </summary>
    public static async Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAfterAsync(this IChatSessionStore store, string sessionId, string? after, CancellationToken cancellationToken)
    {
        if (after is null)
        {
            return await store.ListMessagesAsync(sessionId, cancellationToken);
        }

        return await store.ReadMessagesAsync(sessionId, after, HistoryPageSize, cancellationToken).ToListAsync(cancellationToken);
    }

    /// <summary>The messages whose ids sort after <paramref name="after"/> (from the first when null), read <paramref name="pageSize"/> at a time as they are enumerated.</summary>
    public static async IAsyncEnumerable<ChatMessageRecord> ReadMessagesAsync(this IChatSessionStore store, string sessionId, string? after, int pageSize,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (true)
        {
            var page = await store.ListMessagesAsync(sessionId, after, pageSize, cancellationToken);
            foreach (var message in page)
            {
                yield return message;
            }

            if (page.Count < pageSize)
            {
                yield break;
            }

            after = page[^1].Id;
        }
    }
}
