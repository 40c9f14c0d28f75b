using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChatStack.Contracts.Events;

/// <summary>
/// The wire format of chat events on Pub/Sub: the JSON of a <see cref="ChatEvent"/> or <see cref="ToolInvocation"/>
/// as the message data, and attributes that let a reader route a message without parsing it.
/// </summary>
public static class ChatEventMessages
{
    public const string EventTypeAttribute = "event_type";
    public const string SchemaVersionAttribute = "schema_version";
    public const string TraceParentAttribute = "traceparent";

    public static byte[] Serialize(ChatEvent chatEvent) => JsonSerializer.SerializeToUtf8Bytes(chatEvent, ChatEventsJsonContext.Default.ChatEvent);

    public static byte[] Serialize(ToolInvocation invocation) => JsonSerializer.SerializeToUtf8Bytes(invocation, ChatEventsJsonContext.Default.ToolInvocation);

    public static Dictionary<string, string> Attributes(ChatEvent chatEvent, string? traceParent) =>
        Attributes(chatEvent.EventType, chatEvent.SchemaVersion, traceParent);

    public static Dictionary<string, string> Attributes(ToolInvocation invocation, string? traceParent) =>
        Attributes(ChatEventTypes.ToolInvocation, invocation.SchemaVersion, traceParent);

    /// <summary>
    /// Reads a message. False, with a reason fit for a log line, when it is not something this version can
    /// store: not JSON, an unknown schema version, a missing required field.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> data, IReadOnlyDictionary<string, string> attributes,
        [NotNullWhen(true)] out object? parsed, [NotNullWhen(false)] out string? reason)
    {
        parsed = null;
        attributes.TryGetValue(EventTypeAttribute, out var eventType);
        if (attributes.TryGetValue(SchemaVersionAttribute, out var version) && version != "1")
        {
            reason = $"unknown schema_version {version}";
            return false;
        }

        try
        {
            if (eventType == ChatEventTypes.ToolInvocation)
            {
                var invocation = JsonSerializer.Deserialize(data, ChatEventsJsonContext.Default.ToolInvocation);
                parsed = invocation;
                reason = invocation is null ? "null payload" : Missing(invocation);
            }
            else
            {
                var chatEvent = JsonSerializer.Deserialize(data, ChatEventsJsonContext.Default.ChatEvent);
                parsed = chatEvent;
                reason = chatEvent is null ? "null payload"
                    : chatEvent.SchemaVersion != ChatEvent.CurrentSchemaVersion ? SchemaVersionProblem(chatEvent.SchemaVersion)
                    : Missing(chatEvent);
            }
        }
        catch (JsonException e)
        {
            reason = $"not a {eventType ?? "chat event"} JSON document: {e.Message}";
        }

        if (reason is not null || parsed is null)
        {
            parsed = null;
            reason ??= "empty payload";
            return false;
        }

        return true;
    }

    private static Dictionary<string, string> Attributes(string eventType, int schemaVersion, string? traceParent)
    {
        var attributes = new Dictionary<string, string>
        {
            [EventTypeAttribute] = eventType,
            [SchemaVersionAttribute] = schemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (!string.IsNullOrEmpty(traceParent))
        {
            attributes[TraceParentAttribute] = traceParent;
        }

        return attributes;
    }

    // An absent field deserializes as 0: say so rather than report a version nobody sent.
    private static string SchemaVersionProblem(int version) =>
        version == 0 ? "missing schema_version" : $"unknown schema_version {version}";

    // `required` members are enforced by the deserializer; these catch present-but-empty values.
    private static string? Missing(ChatEvent e) =>
        string.IsNullOrWhiteSpace(e.EventId) ? "missing event_id"
        : string.IsNullOrWhiteSpace(e.SessionId) ? "missing session_id"
        : string.IsNullOrWhiteSpace(e.UserId) ? "missing user_id"
        : string.IsNullOrWhiteSpace(e.EventType) ? "missing event_type"
        : null;

    private static string? Missing(ToolInvocation t) =>
        t.SchemaVersion != ToolInvocation.CurrentSchemaVersion ? SchemaVersionProblem(t.SchemaVersion)
        : string.IsNullOrWhiteSpace(t.InvocationId) ? "missing invocation_id"
        : string.IsNullOrWhiteSpace(t.SessionId) ? "missing session_id"
        : string.IsNullOrWhiteSpace(t.ToolName) ? "missing tool_name"
        : string.IsNullOrWhiteSpace(t.Status) ? "missing status"
        : null;
}

[JsonSerializable(typeof(ChatEvent))]
[JsonSerializable(typeof(ToolInvocation))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class ChatEventsJsonContext : JsonSerializerContext;
