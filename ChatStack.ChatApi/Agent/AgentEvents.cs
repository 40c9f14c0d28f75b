using ChatStack.Contracts;

namespace ChatStack.ChatApi.Agent;

/// <summary>The event types of the chat protocol (the SSE <c>event:</c> field and the envelope's <c>type</c>).</summary>
internal static class ChatEventTypes
{
    public const string TokenCount = "token_count";
    public const string MessageDelta = "message_delta";
    public const string ToolStart = "tool_start";
    public const string ToolEnd = "tool_end";
    public const string Summarized = "summarized";
    public const string Done = "done";
    public const string Error = "error";
}

/// <summary>Phases of a <c>token_count</c> event, in the order a run passes through them.</summary>
internal static class BudgetPhases
{
    public const string Ingress = "ingress";
    public const string Retrieval = "retrieval";
    public const string ModelStream = "model_stream";
    public const string Tool = "tool";
    public const string Finalize = "finalize";
}

internal static class FinishReasons
{
    public const string Stop = "stop";
    public const string Length = "length";
    public const string BudgetExhausted = "budget_exhausted";

    /// <summary>The answer reached <see cref="ChatOptions.MaxAnswerBytes"/>: any more and its document could not be stored.</summary>
    public const string SizeLimit = "size_limit";
    public const string Cancelled = "cancelled";
    public const string Error = "error";
}

internal sealed record TokenCountEvent(int Prompt, int Completion, int Total, int Remaining, int BudgetMax, DateTimeOffset Ts, string Phase, bool ShouldSummarize)
{
    public static TokenCountEvent From(TokenBudget budget, string phase) => new(budget.PromptTokens, budget.CompletionTokens,
        budget.TotalTokens, budget.BudgetRemaining, budget.BudgetMax, budget.LastUpdateTs, phase, budget.ShouldSummarize);
}

internal sealed record MessageDeltaEvent(string Text);

internal sealed record ToolStartEvent(string Name, IReadOnlyDictionary<string, string?> Arguments);

internal sealed record ToolEndEvent(string Name, IReadOnlyDictionary<string, string?> Arguments, string ResultSummary, double DurationMs, string Status);

internal sealed record SummarizedEvent(int ReplacedMessages, int KeptMessages, int TokensBefore, int TokensAfter, int SummaryTokens, string ThroughMessageId);

internal sealed record ReconciliationEvent(int CountedTotal, int ProviderTotal, int Delta);

internal sealed record DoneEvent(string SessionId, string UserMessageId, string? AssistantMessageId, string FinishReason, TokenBudget Usage, ReconciliationEvent? Reconciliation);

internal sealed record ErrorEvent(string Code, string Message);
