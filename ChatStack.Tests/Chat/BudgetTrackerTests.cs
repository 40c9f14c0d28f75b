using ChatStack.ChatApi.Budget;
using ChatStack.Contracts;
using Microsoft.Extensions.Time.Testing;
using System.Text.Json;

namespace ChatStack.Tests.Chat;

public class BudgetTrackerTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Counts_move_the_totals_and_the_remaining_budget()
    {
        var budget = new BudgetTracker("m", budgetMax: 1000, contextWindow: 8000, summarizeShare: 0.75, budgetSummarizeShare: 1, _time);
        budget.SetContext(120);
        _time.Advance(TimeSpan.FromSeconds(1));
        var after = budget.SetCompletion(30);

        Assert.Equal(120, after.PromptTokens);
        Assert.Equal(30, after.CompletionTokens);
        Assert.Equal(150, after.TotalTokens);
        Assert.Equal(850, after.BudgetRemaining);
        Assert.Equal(_time.GetUtcNow(), after.LastUpdateTs);
        Assert.False(after.IsExhausted);
        Assert.Equal(200, budget.AddToContext(80).PromptTokens);
    }

    [Fact]
    public void A_tool_round_trip_charges_the_context_again_and_a_summarization_its_input()
    {
        var budget = new BudgetTracker("m", budgetMax: 1000, contextWindow: 8000, summarizeShare: 0.75, budgetSummarizeShare: 1, _time);
        budget.AddSentInput(300); // a summarization was sent 300 tokens
        budget.SetContext(100); // the compacted context the first call sends
        Assert.Equal(400, budget.Current.PromptTokens);

        budget.ContextSentAgain(); // the first call asked for a tool: the next call sends the 100 again
        Assert.Equal(500, budget.Current.PromptTokens);
        budget.AddToContext(20); // the tool call and its result go with it
        Assert.Equal(520, budget.Current.PromptTokens);

        budget.ContextSentAgain(); // a second round trip re-sends all 120
        Assert.Equal(640, budget.Current.PromptTokens);
        Assert.Equal(360, budget.Current.BudgetRemaining);
    }

    [Fact]
    public void Exhaustion_happens_at_the_budget_and_remaining_never_goes_below_zero()
    {
        var budget = new BudgetTracker("m", budgetMax: 100, contextWindow: 8000, summarizeShare: 0.75, budgetSummarizeShare: 1, _time);
        budget.SetContext(60);
        Assert.False(budget.SetCompletion(39).IsExhausted);
        Assert.True(budget.SetCompletion(40).IsExhausted);
        var over = budget.SetCompletion(47);
        Assert.True(over.IsExhausted);
        Assert.Equal(0, over.BudgetRemaining);
    }

    [Theory]
    [InlineData(5999, false)]
    [InlineData(6000, false)]
    [InlineData(6001, true)]
    public void Should_summarize_turns_true_past_the_configured_share_of_the_context_window(int contextTokens, bool expected)
    {
        var budget = new BudgetTracker("m", budgetMax: 32_000, contextWindow: 8000, summarizeShare: 0.75, budgetSummarizeShare: 0.5, _time);
        Assert.Equal(expected, budget.EvaluateContext(contextTokens).ShouldSummarize);
        Assert.False(budget.EvaluateContext(100).ShouldSummarize);
    }

    [Theory]
    [InlineData(3999, false)]
    [InlineData(4000, false)]
    [InlineData(4001, true)]
    public void With_a_budget_smaller_than_the_window_should_summarize_turns_true_past_its_share_of_the_budget(int contextTokens, bool expected)
    {
        // 0.75 of 128,000 is never reached within a budget of 8,000: the budget's share is what leaves room to answer.
        var budget = new BudgetTracker("m", budgetMax: 8000, contextWindow: 128_000, summarizeShare: 0.75, budgetSummarizeShare: 0.5, _time);
        Assert.Equal(4000, budget.SummarizeAtTokens);
        Assert.Equal(expected, budget.EvaluateContext(contextTokens).ShouldSummarize);
    }

    [Fact]
    public void Provider_usage_reconciles_the_count_and_the_difference_is_kept()
    {
        var budget = new BudgetTracker("m", budgetMax: 1000, contextWindow: 8000, summarizeShare: 0.75, budgetSummarizeShare: 1, _time);
        budget.SetContext(100);
        budget.SetCompletion(50);
        var reconciled = budget.Reconcile(providerPromptTokens: 130, providerCompletionTokens: 49);
        Assert.Equal(179, reconciled.TotalTokens);
        Assert.Equal(29, budget.ReconciliationDelta);
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BudgetTracker("m", 0, 8000, 0.75, 1, _time));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BudgetTracker("m", 10, 8000, 1.5, 1, _time));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BudgetTracker("m", 10, 8000, 0.75, 0, _time));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BudgetTracker("m", 10, 8000, 0.75, 1.5, _time));
        var budget = new BudgetTracker("m", 10, 8000, 0.5, 1, _time);
        Assert.Throws<ArgumentOutOfRangeException>(() => budget.SetContext(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => budget.AddSentInput(-1));
    }

    [Fact]
    public void The_shared_model_serializes_with_snake_case_names()
    {
        var json = JsonSerializer.Serialize(new TokenBudget { PromptTokens = 3, CompletionTokens = 4, BudgetMax = 10, Model = "m", ShouldSummarize = true, LastUpdateTs = _time.GetUtcNow() });
        var root = JsonDocument.Parse(json).RootElement;
        string[] names = ["prompt_tokens", "completion_tokens", "total_tokens", "budget_max", "budget_remaining", "last_update_ts", "model", "should_summarize"];
        Assert.Equal(names.Order(), root.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(7, root.GetProperty("total_tokens").GetInt32());
        Assert.Equal(3, root.GetProperty("budget_remaining").GetInt32());
        var back = JsonSerializer.Deserialize<TokenBudget>(json)!;
        Assert.Equal(7, back.TotalTokens);
    }
}
