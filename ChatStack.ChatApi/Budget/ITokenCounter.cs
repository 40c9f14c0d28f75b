namespace ChatStack.ChatApi.Budget;

/// <summary>
/// Counts tokens of one encoding. A seam on purpose: ChatStack.Tokenization (a faster exact tiktoken counter)
/// replaces the implementation without touching the budget logic.
/// </summary>
internal interface ITokenCounter
{
    /// <summary>The encoding, e.g. <c>o200k_base</c>.</summary>
    string Encoding { get; }

    int Count(ReadOnlySpan<char> text);

    /// <summary>
    /// Where pre-tokenization splits <paramref name="text"/>: (offset, length) of each piece. Used by the streaming
    /// counter to find a boundary when the text has no spaces (CJK).
    /// </summary>
    IEnumerable<(int Offset, int Length)> Pieces(string text);
}

/// <summary>Counters per model: the encoding configured for the model, or the one its name implies.</summary>
internal interface ITokenCounterProvider
{
    ITokenCounter ForModel(string model);
}
