using ChatStack.Tokenization;

namespace ChatStack.Tests.Support;

/// <summary>
/// The real counter, adding up the characters its incremental counters read: the measure of re-counting, which
/// timing would only blur on a shared machine.
/// </summary>
internal sealed class RecountingTokenCounter(TokenCounter inner) : ITokenCounter, ITokenCounterCore
{
    private readonly ITokenCounterCore _core = inner;

    /// <summary>Characters read by counts of the incremental counters this one created.</summary>
    public long Characters { get; private set; }

    public string EncodingName => inner.EncodingName;

    public int CountTokens(ReadOnlySpan<char> text) => inner.CountTokens(text);

    public IReadOnlyList<int> EncodeToIds(ReadOnlySpan<char> text) => inner.EncodeToIds(text);

    public StreamingTokenCounter CreateStreamingCounter() => inner.CreateStreamingCounter();

    public IncrementalTokenCounter CreateIncrementalCounter() => new(this);

    int ITokenCounterCore.CountTokens(ReadOnlySpan<char> text, ref LongPieceCache? longPiece, int offset)
    {
        Characters += text.Length;
        return _core.CountTokens(text, ref longPiece, offset);
    }

    int ITokenCounterCore.CountTokens(ReadOnlySpan<char> text, int boundary, out int tokensBefore, ref LongPieceCache? longPiece, int offset)
    {
        Characters += text.Length;
        return _core.CountTokens(text, boundary, out tokensBefore, ref longPiece, offset);
    }
}
