using System.Text.Json.Serialization;

namespace ChatStack.Contracts;

/// <summary>
/// The token budget of one agent run, as every ChatStack service sees it (the chat API streams it, the
/// analytics worker stores it). Immutable: each change makes a new value, so a snapshot sent on the wire or
/// to another service never changes under its reader.
/// </summary>
public sealed record TokenBudget
{
    /// <summary>Input tokens: system prompt, history, the user's message, tool results.</summary>
    [JsonPropertyName("prompt_tokens")]
    public int PromptTokens { get; init; }

    /// <summary>Output tokens: the answer so far and the tool arguments the model wrote.</summary>
    [JsonPropertyName("completion_tokens")]
    public int CompletionTokens { get; init; }

    [JsonPropertyName("total_tokens")]
    public int TotalTokens => PromptTokens + CompletionTokens;

    /// <summary>The most this run may spend.</summary>
    [JsonPropertyName("budget_max")]
    public int BudgetMax { get; init; }

    /// <summary>What is left, never below zero.</summary>
    [JsonPropertyName("budget_remaining")]
    public int BudgetRemaining => Math.Max(0, BudgetMax - TotalTokens);

    [JsonPropertyName("last_update_ts")]
    public DateTimeOffset LastUpdateTs { get; init; }

    [JsonPropertyName("model")]
    public string Model { get; init; } = "";

    /// <summary>True once the context sent to the model passes the configured share of its context window.</summary>
    [JsonPropertyName("should_summarize")]
    public bool ShouldSummarize { get; init; }

    [JsonIgnore]
    public bool IsExhausted => TotalTokens >= BudgetMax;
}
