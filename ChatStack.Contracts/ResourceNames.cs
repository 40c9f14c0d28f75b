namespace ChatStack.Contracts;

/// <summary>
/// The names of the infrastructure chat events flow through. The provisioner creates these; the chat API and
/// the analytics worker use them. Defaults, overridable where a service takes options.
/// </summary>
public static class ResourceNames
{
    /// <summary>Topic the chat API publishes every chat event to.</summary>
    public const string ChatEventsTopic = "chat-events";

    /// <summary>Subscription the analytics worker pulls.</summary>
    public const string ChatEventsSubscription = "chat-events-to-bq";

    /// <summary>Topic messages go to after too many failed deliveries.</summary>
    public const string DeadLetterTopic = "chat-events-dlq";

    /// <summary>Delivery attempts of <see cref="ChatEventsSubscription"/> before Pub/Sub dead-letters a message.</summary>
    public const int MaxDeliveryAttempts = 5;

    /// <summary>Subscription that keeps dead letters until someone looks at them.</summary>
    public const string DeadLetterSubscription = "chat-events-dlq-hold";

    /// <summary>The BigQuery dataset of the warehouse.</summary>
    public const string Dataset = "chat_analytics";

    /// <summary>One row per chat event.</summary>
    public const string ChatEventsTable = "chat_events";

    /// <summary>One row per tool invocation.</summary>
    public const string ToolInvocationsTable = "tool_invocations";

    /// <summary>Per-session figures.</summary>
    public const string SessionsSummaryView = "v_chat_sessions_summary";

    /// <summary>Per-tool, per-day figures.</summary>
    public const string ToolUsageSummaryView = "v_tool_usage_summary";

    /// <summary>The Firestore collection of chat sessions (messages are its subcollection <c>messages</c>).</summary>
    public const string SessionsCollection = "sessions";

    /// <summary>The Firestore collection of per-user request and token windows, one document per user, shared by the chat API's instances.</summary>
    public const string UserLimitsCollection = "user_limits";

    /// <summary>The Firestore collection of turns in progress, one document per session answering a message, shared by the chat API's instances.</summary>
    public const string SessionTurnsCollection = "session_turns";

    /// <summary>
    /// The Firestore collection of requests to stop or to copy a stream that another chat API instance runs (one
    /// document per stream and kind), which the running instance listens for.
    /// </summary>
    public const string StreamRequestsCollection = "stream_requests";

    /// <summary>
    /// The Firestore collection of streams copied for a reader who resumed on another instance: one document per stream,
    /// its events in the subcollection <c>chunks</c>.
    /// </summary>
    public const string StreamEventsCollection = "stream_events";

    /// <summary>The subcollection of <see cref="StreamEventsCollection"/> that holds a copied stream's events.</summary>
    public const string StreamChunksCollection = "chunks";

    /// <summary>
    /// The Firestore collection of streams that have ended, one document per stream naming the instance that ran it,
    /// for as long as that instance keeps it for resuming: a resume that reaches another instance asks it for a copy.
    /// </summary>
    public const string StreamEndsCollection = "stream_ends";

    /// <summary>
    /// The timestamp after which a document of <see cref="SessionTurnsCollection"/>, <see cref="UserLimitsCollection"/>,
    /// <see cref="StreamRequestsCollection"/>, <see cref="StreamEventsCollection"/>, <see cref="StreamChunksCollection"/> or
    /// <see cref="StreamEndsCollection"/>
    /// means nothing any more: their TTL field, which the provisioner sets on real Firestore.
    /// </summary>
    public const string ExpiresAtField = "expires_at";
}
