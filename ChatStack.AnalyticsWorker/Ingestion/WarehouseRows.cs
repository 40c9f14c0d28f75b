using System.Text.Json;
using System.Text.Json.Nodes;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>A row for BigQuery: the table, the insertId that de-duplicates it, and its JSON.</summary>
public sealed record WarehouseRow(string Table, string InsertId, JsonObject Json, DateTimeOffset EventTimestamp);

/// <summary>Maps the shared contracts onto the warehouse tables the provisioner declares.</summary>
public static class WarehouseRows
{
    public static WarehouseRow From(object parsed, DateTimeOffset ingestedAt) => parsed switch
    {
        ChatEvent e => new WarehouseRow(ResourceNames.ChatEventsTable, e.EventId, ChatEventRow(e, ingestedAt), e.EventTimestamp),
        ToolInvocation t => new WarehouseRow(ResourceNames.ToolInvocationsTable, t.InvocationId, ToolRow(t, ingestedAt), t.StartedAt),
        _ => throw new ArgumentException($"Not a chat event: {parsed.GetType().Name}", nameof(parsed)),
    };

    private static JsonObject ChatEventRow(ChatEvent e, DateTimeOffset ingestedAt)
    {
        var row = new JsonObject
        {
            ["event_id"] = e.EventId,
            ["schema_version"] = e.SchemaVersion,
            ["session_id"] = e.SessionId,
            ["user_id"] = e.UserId,
            ["event_type"] = e.EventType,
            ["message_id"] = e.MessageId,
            ["role"] = e.Role,
            ["content"] = e.Content,
            ["content_sha256"] = e.ContentSha256,
            ["content_length"] = e.ContentLength,
            ["model"] = e.Model,
            ["prompt_tokens"] = e.PromptTokens,
            ["completion_tokens"] = e.CompletionTokens,
            ["total_tokens"] = e.TotalTokens,
            ["budget_max"] = e.BudgetMax,
            ["budget_remaining"] = e.BudgetRemaining,
            ["phase"] = e.Phase,
            ["finish_reason"] = e.FinishReason,
            ["latency_ms"] = e.LatencyMs,
            ["trace_id"] = e.TraceId,
            // BigQuery's insertAll takes a JSON column as a JSON-encoded string.
            ["metadata"] = e.Metadata?.ToJsonString(),
            ["event_timestamp"] = Timestamp(e.EventTimestamp),
            ["ingested_at"] = Timestamp(ingestedAt),
        };
        return WithoutNulls(row);
    }

    private static JsonObject ToolRow(ToolInvocation t, DateTimeOffset ingestedAt) => WithoutNulls(new JsonObject
    {
        ["invocation_id"] = t.InvocationId,
        ["schema_version"] = t.SchemaVersion,
        ["session_id"] = t.SessionId,
        ["user_id"] = t.UserId,
        ["message_id"] = t.MessageId,
        ["tool_name"] = t.ToolName,
        ["status"] = t.Status,
        ["arguments_bytes"] = t.ArgumentsBytes,
        ["result_bytes"] = t.ResultBytes,
        ["argument_tokens"] = t.ArgumentTokens,
        ["result_tokens"] = t.ResultTokens,
        ["started_at"] = Timestamp(t.StartedAt),
        ["ended_at"] = t.EndedAt is { } ended ? Timestamp(ended) : null,
        ["duration_ms"] = t.DurationMs,
        ["error"] = t.Error,
        ["trace_id"] = t.TraceId,
        ["ingested_at"] = Timestamp(ingestedAt),
    });

    private static string Timestamp(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static JsonObject WithoutNulls(JsonObject row)
    {
        foreach (var key in row.Where(p => p.Value is null).Select(p => p.Key).ToList())
        {
            row.Remove(key);
        }

        return row;
    }
}
