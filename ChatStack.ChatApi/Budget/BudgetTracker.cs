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
    private int _sent; // input of model calls already sent, re-sends included
    private int _context; // what the next model call sends

    public BudgetTracker(string model, int budgetMax, int contextWindow, double summarizeShare, double budgetSummarizeShare, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetMax);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextWindow);
        if (summarizeShare is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(summarizeShare), "A share of the context window, in (0, 1].");
        }

        if (budgetSummarizeShare is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(budgetSummarizeShare), "A share of the budget, in (0, 1].");
        }

        _time = time;
        ContextWindow = contextWindow;
        // Whichever comes first: the model's window filling up, or the history crowding out this message's budget.
        _summarizeAtTokens = (int)Math.Min(Math.Floor(contextWindow * summarizeShare), Math.Floor(budgetMax * budgetSummarizeShare));
        Current = new TokenBudget { Model = model, BudgetMax = budgetMax, LastUpdateTs = time.GetUtcNow() };
    }

    public TokenBudget Current { get; private set; }

    public int ContextWindow { get; }

    /// <summary>Context size past which <see cref="TokenBudget.ShouldSummarize"/> turns true: a share of the context window or of the budget, the smaller.</summary>
    public int SummarizeAtTokens => _summarizeAtTokens;

    /// <summary>Provider-reported minus counted total, once reconciled.</summary>
    public int? ReconciliationDelta { get; private set; }

    public bool IsExhausted => Current.IsExhausted;

    /// <summary>What the next model call sends (part of <see cref="TokenBudget.PromptTokens"/> until it is sent).</summary>
    public int ContextTokens => _context;

    /// <summary>What the budget leaves for the next call's context and output: the budget less what was already spent.</summary>
    public int Spendable => Current.BudgetMax - (Current.PromptTokens - _context) - Current.CompletionTokens;

    /// <summary>
    /// Sets the context the next model call sends. Prompt tokens are what model calls are sent, as a provider bills
    /// them: the input of calls already made plus this context, which the next call will send.
    /// </summary>
    public TokenBudget SetContext(int contextTokens)
    {
        _context = NonNegative(contextTokens);
        return Update(Current with { PromptTokens = _sent + _context });
    }

    /// <summary>The context grows: a tool call the model wrote, or its result, goes back with the next call.</summary>
    public TokenBudget AddToContext(int tokens) => SetContext(_context + tokens);

    /// <summary>A model call outside the conversation (a summarization) was sent <paramref name="inputTokens"/>.</summary>
    public TokenBudget AddSentInput(int inputTokens)
    {
        _sent += NonNegative(inputTokens);
        return SetContext(_context);
    }

    /// <summary>
    /// A model call was sent the context and another call follows (a tool round trip): that call sends the whole
    /// context again, so the first call's input is kept as spent and the context counts a second time.
    /// </summary>
    public TokenBudget ContextSentAgain() => AddSentInput(_context);

    /// <summary>Output counted so far (answer text plus tool arguments).</summary>
    public TokenBudget SetCompletion(int completionTokens) => Update(Current with { CompletionTokens = NonNegative(completionTokens) });

    /// <summary>Decides whether the context about to be sent to the model should be summarized first.</summary>
    public TokenBudget EvaluateContext(int contextTokens) => Update(Current with { ShouldSummarize = contextTokens > _summarizeAtTokens });

    /// <summary>
    /// The provider's own usage replaces the count: it is what is billed, with the per-message framing the count
    /// leaves out and without a pending context that was never sent. The difference is kept.
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
