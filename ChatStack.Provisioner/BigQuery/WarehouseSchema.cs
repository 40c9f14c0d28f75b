using ChatStack.Contracts;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.Provisioner.BigQuery;

/// <summary>The warehouse ChatStack writes: two partitioned, clustered tables and two summary views.</summary>
public static class WarehouseSchema
{
    private static TableFieldSchema Field(string name, string type, string description, string mode = "NULLABLE") =>
        new() { Name = name, Type = type, Mode = mode, Description = description };

    /// <summary>One row per chat event; the worker writes it with <c>event_id</c> as insertId.</summary>
    public static TableSpec ChatEvents { get; } = new(
        ResourceNames.ChatEventsTable,
        "One row per chat event (user and assistant messages, summaries, budget events), written by the analytics worker.",
        [
            Field("event_id", "STRING", "Deterministic id of the event; duplicates from at-least-once delivery share it.", "REQUIRED"),
            Field("schema_version", "INT64", "Version of the ChatEvent contract that produced the row."),
            Field("session_id", "STRING", "Chat session.", "REQUIRED"),
            Field("user_id", "STRING", "Authenticated user.", "REQUIRED"),
            Field("event_type", "STRING", "user_message, assistant_message, summary, budget_exhausted, ...", "REQUIRED"),
            Field("message_id", "STRING", "Message the event belongs to."),
            Field("role", "STRING", "user, assistant, system or tool."),
            Field("content", "STRING", "Message text, only when content capture is enabled."),
            // Keyed since the chat API hashes with a secret (a plain SHA-256 of "yes" or a phone number is that text to any
            // reader). The name stays: the provisioner only ever adds columns, and a rename would break the worker's
            // inserts and every query and view that reads the column.
            Field("content_sha256", "STRING",
                "Hex HMAC-SHA256 of the message text under the chat API's secret key (not a plain SHA-256 despite the name): " +
                "equal texts match within a deployment; the text cannot be recovered without the key. Always present for messages."),
            Field("content_length", "INT64", "Length of the message text in characters."),
            Field("model", "STRING", "Model that answered, as reported."),
            Field("prompt_tokens", "INT64", "Prompt tokens of the turn."),
            Field("completion_tokens", "INT64", "Completion tokens of the turn."),
            Field("total_tokens", "INT64", "Prompt plus completion tokens."),
            Field("budget_max", "INT64", "Token budget of the request."),
            Field("budget_remaining", "INT64", "Budget left after the event."),
            Field("phase", "STRING", "Budget phase: ingress, retrieval, model_stream, tool, finalize."),
            Field("finish_reason", "STRING", "stop, length, tool_calls, budget_exhausted, size_limit, cancelled, error."),
            Field("latency_ms", "FLOAT64", "Time from request to the event."),
            Field("trace_id", "STRING", "W3C trace id of the chat turn."),
            Field("metadata", "JSON", "Event-specific extras."),
            Field("event_timestamp", "TIMESTAMP", "When the event happened.", "REQUIRED"),
            Field("ingested_at", "TIMESTAMP", "When the worker wrote the row.", "REQUIRED"),
        ],
        PartitionField: "event_timestamp",
        Clustering: ["session_id", "user_id", "event_type"]);

    /// <summary>One row per tool invocation.</summary>
    public static TableSpec ToolInvocations { get; } = new(
        ResourceNames.ToolInvocationsTable,
        "One row per tool invocation of the chat agent, written by the analytics worker.",
        [
            Field("invocation_id", "STRING", "Deterministic id of the invocation; the dedup key.", "REQUIRED"),
            Field("schema_version", "INT64", "Version of the ToolInvocation contract."),
            Field("session_id", "STRING", "Chat session.", "REQUIRED"),
            Field("user_id", "STRING", "Authenticated user."),
            Field("message_id", "STRING", "Assistant message that called the tool."),
            Field("tool_name", "STRING", "Kernel function name.", "REQUIRED"),
            Field("status", "STRING", "ok or error.", "REQUIRED"),
            Field("arguments_bytes", "INT64", "Size of the arguments JSON in UTF-8 bytes."),
            Field("result_bytes", "INT64", "Size of the result in UTF-8 bytes."),
            Field("argument_tokens", "INT64", "Tokens of the arguments, as counted into the budget."),
            Field("result_tokens", "INT64", "Tokens of the result, as counted into the budget."),
            Field("started_at", "TIMESTAMP", "When the tool started.", "REQUIRED"),
            Field("ended_at", "TIMESTAMP", "When the tool ended."),
            Field("duration_ms", "FLOAT64", "ended_at - started_at in milliseconds."),
            Field("error", "STRING", "When status is error: the error message with content capture on, otherwise the error's type (the message can quote the arguments)."),
            Field("trace_id", "STRING", "W3C trace id of the chat turn."),
            Field("ingested_at", "TIMESTAMP", "When the worker wrote the row.", "REQUIRED"),
        ],
        PartitionField: "started_at",
        Clustering: ["tool_name", "status", "session_id"]);

    /// <summary>
    /// Per session. Reads chat_events and tool_invocations through a de-duplicating layer (first row per id), so
    /// at-least-once delivery never double counts. Cost is estimated for models whose list price is known (USD per
    /// million tokens) and NULL otherwise.
    /// </summary>
    public static ViewSpec SessionsSummary(string projectId, string dataset) => new(
        ResourceNames.SessionsSummaryView,
        "Per chat session: user, first and last event, messages by role, tokens, peak budget use, tool calls, estimated cost.",
        $$"""
        WITH events AS (
          SELECT *
          FROM `{{projectId}}.{{dataset}}.{{ResourceNames.ChatEventsTable}}`
          WHERE TRUE
          QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
        ),
        tools AS (
          SELECT session_id, COUNT(*) AS tool_calls, COUNTIF(status = 'error') AS tool_errors
          FROM (
            SELECT session_id, status
            FROM `{{projectId}}.{{dataset}}.{{ResourceNames.ToolInvocationsTable}}`
            WHERE TRUE
            QUALIFY ROW_NUMBER() OVER (PARTITION BY invocation_id ORDER BY ingested_at) = 1
          )
          GROUP BY session_id
        ),
        sessions AS (
          SELECT
            session_id,
            ANY_VALUE(user_id) AS user_id,
            MIN(event_timestamp) AS first_event_at,
            MAX(event_timestamp) AS last_event_at,
            COUNTIF(event_type = 'user_message') AS user_messages,
            COUNTIF(event_type = 'assistant_message') AS assistant_messages,
            COUNTIF(event_type = 'summary') AS summaries,
            IFNULL(SUM(IF(event_type = 'assistant_message', prompt_tokens, 0)), 0) AS prompt_tokens,
            IFNULL(SUM(IF(event_type = 'assistant_message', completion_tokens, 0)), 0) AS completion_tokens,
            IFNULL(SUM(IF(event_type = 'assistant_message', total_tokens, 0)), 0) AS total_tokens,
            MAX(SAFE_DIVIDE(budget_max - budget_remaining, budget_max)) AS peak_budget_use,
            SUM(IF(event_type = 'assistant_message',
              (prompt_tokens * (CASE model
                 WHEN 'gpt-4o' THEN 2.5 WHEN 'gpt-4o-mini' THEN 0.15 WHEN 'gpt-4.1' THEN 2.0
                 WHEN 'gpt-4.1-mini' THEN 0.4 WHEN 'chatstack-offline' THEN 0.0 END)
               + completion_tokens * (CASE model
                 WHEN 'gpt-4o' THEN 10.0 WHEN 'gpt-4o-mini' THEN 0.6 WHEN 'gpt-4.1' THEN 8.0
                 WHEN 'gpt-4.1-mini' THEN 1.6 WHEN 'chatstack-offline' THEN 0.0 END)) / 1000000,
              NULL)) AS estimated_cost_usd
          FROM events
          GROUP BY session_id
        )
        SELECT
          s.*,
          IFNULL(t.tool_calls, 0) AS tool_calls,
          IFNULL(t.tool_errors, 0) AS tool_errors
        FROM sessions AS s
        LEFT JOIN tools AS t USING (session_id)
        """,
        [ResourceNames.ChatEventsTable, ResourceNames.ToolInvocationsTable]);

    /// <summary>Per tool and day, over de-duplicated invocations.</summary>
    public static ViewSpec ToolUsageSummary(string projectId, string dataset) => new(
        ResourceNames.ToolUsageSummaryView,
        "Per tool and day: calls, errors, error rate, p50/p95 latency, tokens.",
        $$"""
        WITH invocations AS (
          SELECT *
          FROM `{{projectId}}.{{dataset}}.{{ResourceNames.ToolInvocationsTable}}`
          WHERE TRUE
          QUALIFY ROW_NUMBER() OVER (PARTITION BY invocation_id ORDER BY ingested_at) = 1
        )
        SELECT
          tool_name,
          DATE(started_at) AS day,
          COUNT(*) AS calls,
          COUNTIF(status = 'error') AS errors,
          SAFE_DIVIDE(COUNTIF(status = 'error'), COUNT(*)) AS error_rate,
          APPROX_QUANTILES(duration_ms, 100)[OFFSET(50)] AS p50_duration_ms,
          APPROX_QUANTILES(duration_ms, 100)[OFFSET(95)] AS p95_duration_ms,
          IFNULL(SUM(argument_tokens), 0) + IFNULL(SUM(result_tokens), 0) AS tokens
        FROM invocations
        GROUP BY tool_name, day
        """,
        [ResourceNames.ToolInvocationsTable]);
}

/// <summary>A table ChatStack owns, partitioned by day on <see cref="PartitionField"/>.</summary>
public sealed record TableSpec(string TableId, string Description, IReadOnlyList<TableFieldSchema> Fields, string PartitionField, IReadOnlyList<string> Clustering);

/// <summary>A view ChatStack owns, in GoogleSQL, and the tables it reads.</summary>
public sealed record ViewSpec(string ViewId, string Description, string Query, IReadOnlyList<string> Reads);
