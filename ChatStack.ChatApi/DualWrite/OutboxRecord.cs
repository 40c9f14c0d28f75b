using System.Diagnostics;
using System.Text;
using ChatStack.ChatApi.Sessions;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>A Pub/Sub message waiting in Firestore's <c>outbox</c> collection, written in the same commit as its message.</summary>
internal sealed record OutboxRecord(string EventId, byte[] Data, IReadOnlyDictionary<string, string> Attributes, DateTimeOffset CreatedAt);

/// <summary>Turns a persisted chat message into the chat event (or tool invocation) the warehouse records.</summary>
internal sealed class ChatEventOutbox(DualWriteOptions options, ContentHash contentHash)
{
    public bool Enabled => options.Enabled;

    /// <summary>Whether a message's record carries its text (content capture on), as JSON: a second stored copy of it.</summary>
    public bool CarriesContent => options.Enabled && options.CaptureContent;

    public IReadOnlyList<OutboxRecord> RecordsFor(ChatSession session, ChatMessageRecord message, TokenBudget budget, int toolSequence)
    {
        if (!options.Enabled)
        {
            return [];
        }

        var traceParent = Activity.Current?.Id;
        var traceId = Activity.Current?.TraceId.ToString();
        if (message.Role == "tool")
        {
            var invocation = new ToolInvocation
            {
                InvocationId = ChatEventIds.ForToolInvocation(session.Id, message.Id, toolSequence),
                SessionId = session.Id,
                UserId = session.UserId,
                MessageId = message.Id,
                ToolName = message.ToolName ?? "unknown",
                Status = message.ToolStatus ?? "ok",
                ArgumentsBytes = message.ToolArguments is { } args ? Encoding.UTF8.GetByteCount(args) : null,
                ResultBytes = message.ToolResultBytes ?? Encoding.UTF8.GetByteCount(message.Content),
                ResultTokens = message.Tokens,
                StartedAt = message.DurationMs is { } d ? message.CreatedAt.AddMilliseconds(-d) : message.CreatedAt,
                EndedAt = message.CreatedAt,
                DurationMs = message.DurationMs,
                // A tool's error message can quote its arguments: text only with capture on, else the error's type.
                Error = message.ToolStatus != "error" ? null : options.CaptureContent ? message.Content : message.ToolErrorType ?? "error",
                TraceId = traceId,
            };
            return [new OutboxRecord(invocation.InvocationId, ChatEventMessages.Serialize(invocation), ChatEventMessages.Attributes(invocation, traceParent), message.CreatedAt)];
        }

        var eventType = message.Role == "user" ? ChatEventTypes.UserMessage : ChatEventTypes.AssistantMessage;
        var assistant = eventType == ChatEventTypes.AssistantMessage;
        var chatEvent = new ChatEvent
        {
            EventId = ChatEventIds.ForEvent(session.Id, message.Id, eventType),
            EventType = eventType,
            SessionId = session.Id,
            UserId = session.UserId,
            MessageId = message.Id,
            Role = message.Role,
            Content = options.CaptureContent ? message.Content : null,
            // Keyed (HMAC-SHA256), whatever the column's name says: a plain SHA-256 of a short message is the message to
            // anyone who can read the warehouse. The name stays because a deployed table's column cannot be renamed.
            ContentSha256 = contentHash.Of(message.Content),
            ContentLength = message.Content.Length,
            Model = message.Model ?? budget.Model,
            // A user message carries its own tokens; an assistant message the whole turn's usage.
            PromptTokens = assistant ? budget.PromptTokens : message.Tokens,
            CompletionTokens = assistant ? budget.CompletionTokens : 0,
            TotalTokens = assistant ? budget.TotalTokens : message.Tokens,
            BudgetMax = budget.BudgetMax,
            BudgetRemaining = budget.BudgetRemaining,
            Phase = assistant ? "finalize" : "ingress",
            FinishReason = message.FinishReason,
            TraceId = traceId,
            EventTimestamp = message.CreatedAt,
        };
        return [new OutboxRecord(chatEvent.EventId, ChatEventMessages.Serialize(chatEvent), ChatEventMessages.Attributes(chatEvent, traceParent), message.CreatedAt)];
    }
}
