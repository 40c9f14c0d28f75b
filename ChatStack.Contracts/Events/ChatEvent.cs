using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ChatStack.Contracts.Events;

/// <summary>What happened in a chat, as the analytics warehouse records it.</summary>
public static class ChatEventTypes
{
    public const string UserMessage = "user_message";
    public const string AssistantMessage = "assistant_message";
    public const string Summary = "summary";
    public const string BudgetExhausted = "budget_exhausted";

    /// <summary>The Pub/Sub <c>event_type</c> of a <see cref="ToolInvocation"/>.</summary>
    public const string ToolInvocation = "tool_invocation";
}

/// <summary>
/// One chat event (a user or assistant message, a summary, a budget event). Serialized as JSON in a Pub/Sub
/// message; <see cref="EventId"/> is deterministic so redelivery and re-publishing keep the same id, and the
/// warehouse counts it once.
/// </summary>
public sealed record ChatEvent
{
    /// <summary>Version of this contract; bump when a field changes meaning or a required field is added.</summary>
    public const int CurrentSchemaVersion = 1;

    [JsonPropertyName("schema_version")] public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    [JsonPropertyName("event_id")] public required string EventId { get; init; }
    [JsonPropertyName("event_type")] public required string EventType { get; init; }
    [JsonPropertyName("session_id")] public required string SessionId { get; init; }
    [JsonPropertyName("user_id")] public required string UserId { get; init; }
    [JsonPropertyName("message_id")] public string? MessageId { get; init; }
    [JsonPropertyName("role")] public string? Role { get; init; }

    /// <summary>The text, only when content capture is on; <see cref="ContentSha256"/> and <see cref="ContentLength"/> always.</summary>
    [JsonPropertyName("content")] public string? Content { get; init; }

    /// <summary>
    /// Lowercase hex HMAC-SHA256 of the text's UTF-8 bytes under the chat API's secret key (<c>DualWrite:ContentHashKey</c>):
    /// equal texts match within a deployment, and the text cannot be recovered by trying candidates without the key. Not a
    /// plain SHA-256 despite the name, which stays because the warehouse column cannot be renamed in place. Events from
    /// before the key hold a plain SHA-256 in the same form (64 hex digits), so the schema version did not change.
    /// </summary>
    [JsonPropertyName("content_sha256")] public string? ContentSha256 { get; init; }
    [JsonPropertyName("content_length")] public int? ContentLength { get; init; }
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("prompt_tokens")] public int? PromptTokens { get; init; }
    [JsonPropertyName("completion_tokens")] public int? CompletionTokens { get; init; }
    [JsonPropertyName("total_tokens")] public int? TotalTokens { get; init; }
    [JsonPropertyName("budget_max")] public int? BudgetMax { get; init; }
    [JsonPropertyName("budget_remaining")] public int? BudgetRemaining { get; init; }
    [JsonPropertyName("phase")] public string? Phase { get; init; }
    [JsonPropertyName("finish_reason")] public string? FinishReason { get; init; }
    [JsonPropertyName("latency_ms")] public double? LatencyMs { get; init; }

    /// <summary>W3C trace id of the chat turn (the full traceparent travels as a message attribute).</summary>
    [JsonPropertyName("trace_id")] public string? TraceId { get; init; }
    [JsonPropertyName("metadata")] public JsonObject? Metadata { get; init; }
    [JsonPropertyName("event_timestamp")] public required DateTimeOffset EventTimestamp { get; init; }
}

/// <summary>One call of a tool by the chat agent.</summary>
public sealed record ToolInvocation
{
    public const int CurrentSchemaVersion = 1;

    [JsonPropertyName("schema_version")] public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    [JsonPropertyName("invocation_id")] public required string InvocationId { get; init; }
    [JsonPropertyName("session_id")] public required string SessionId { get; init; }
    [JsonPropertyName("user_id")] public string? UserId { get; init; }
    [JsonPropertyName("message_id")] public string? MessageId { get; init; }
    [JsonPropertyName("tool_name")] public required string ToolName { get; init; }

    /// <summary><c>ok</c> or <c>error</c>.</summary>
    [JsonPropertyName("status")] public required string Status { get; init; }
    [JsonPropertyName("arguments_bytes")] public int? ArgumentsBytes { get; init; }
    [JsonPropertyName("result_bytes")] public int? ResultBytes { get; init; }
    [JsonPropertyName("argument_tokens")] public int? ArgumentTokens { get; init; }
    [JsonPropertyName("result_tokens")] public int? ResultTokens { get; init; }
    [JsonPropertyName("started_at")] public required DateTimeOffset StartedAt { get; init; }
    [JsonPropertyName("ended_at")] public DateTimeOffset? EndedAt { get; init; }
    [JsonPropertyName("duration_ms")] public double? DurationMs { get; init; }
    [JsonPropertyName("error")] public string? Error { get; init; }
    [JsonPropertyName("trace_id")] public string? TraceId { get; init; }
}
