using ChatStack.Contracts;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The budget of one run and its transitions. Knows nothing of tokenizers: it is told counts, so the counting
/// implementation can change without touching these rules.
/// </summary>
internal sealed class BudgetTracker
{
    private readonly TimeProvider _time;
    private readonly int _summarizeAtTokens;

    public BudgetTracker(string model, int budgetMax, int contextWindow, double summarizeShare, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetMax);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextWindow);
        if (summarizeShare is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(summarizeShare), "A share of the context window, in (0, 1].");
        }

        _time = time;
        ContextWindow = contextWindow;
        _summarizeAtTokens = (int)Math.Floor(contextWindow * summarizeShare);
        Current = new TokenBudget { Model = model, BudgetMax = budgetMax, LastUpdateTs = time.GetUtcNow() };
    }

    public TokenBudget Current { get; private set; }

    public int ContextWindow { get; }

    /// <summary>Context size past which <see cref="TokenBudget.ShouldSummarize"/> turns true.</summary>
    public int SummarizeAtTokens => _summarizeAtTokens;

    /// <summary>Provider-reported minus counted total, once reconciled.</summary>
    public int? ReconciliationDelta { get; private set; }

    public bool IsExhausted => Current.IsExhausted;

    /// <summary>Input counted: sets the prompt total (each piece of input is counted once).</summary>
    public TokenBudget SetPrompt(int promptTokens) => Update(Current with { PromptTokens = NonNegative(promptTokens) });

    public TokenBudget AddPrompt(int tokens) => SetPrompt(Current.PromptTokens + tokens);

    /// <summary>Output counted so far (answer text plus tool arguments).</summary>
    public TokenBudget SetCompletion(int completionTokens) => Update(Current with { CompletionTokens = NonNegative(completionTokens) });

    /// <summary>Decides whether the context about to be sent to the model should be summarized first.</summary>
    public TokenBudget EvaluateContext(int contextTokens) => Update(Current with { ShouldSummarize = contextTokens > _summarizeAtTokens });

    /// <summary>
    /// The provider's own usage replaces the count (it is what is billed: a provider re-sends context on each
    /// tool round trip and adds per-message framing); the difference is kept.
    /// </summary>
    public TokenBudget Reconcile(int providerPromptTokens, int providerCompletionTokens)
    {
        var counted = Current.TotalTokens;
        var updated = Update(Current with { PromptTokens = NonNegative(providerPromptTokens), CompletionTokens = NonNegative(providerCompletionTokens) });
        ReconciliationDelta = updated.TotalTokens - counted;
        return updated;
    }

    private TokenBudget Update(TokenBudget next) => Current = next with { LastUpdateTs = _time.GetUtcNow() };

    private static int NonNegative(int value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return value;
    }
}
