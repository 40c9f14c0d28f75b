namespace ChatStack.Contracts.Telemetry;

/// <summary>ChatStack's token-budget attributes on agent spans and span events (a <c>TokenBudget</c> in telemetry).</summary>
public static class BudgetAttributes
{
    public const string Max = "chatstack.budget.max";
    public const string Remaining = "chatstack.budget.remaining";
    public const string Total = "chatstack.budget.total_tokens";
    public const string Phase = "chatstack.budget.phase";
    public const string ShouldSummarize = "chatstack.budget.should_summarize";

    /// <summary>Span event on the agent span each time the budget enters a new phase.</summary>
    public const string PhaseEvent = "chatstack.budget.phase";

    /// <summary>Span event when the budget ran out and generation stopped.</summary>
    public const string ExhaustedEvent = "chatstack.budget.exhausted";

    /// <summary>Span event when older history was summarized to fit the context window.</summary>
    public const string SummarizedEvent = "chatstack.summarized";

    /// <summary>How the run ended (<c>stop</c>, <c>length</c>, <c>budget_exhausted</c>, <c>size_limit</c>, <c>cancelled</c>, <c>error</c>).</summary>
    public const string FinishReason = "chatstack.finish_reason";

    /// <summary>Whether a model call's usage came from the provider or from ChatStack's own exact count.</summary>
    public const string UsageSource = "chatstack.usage.source";
}
