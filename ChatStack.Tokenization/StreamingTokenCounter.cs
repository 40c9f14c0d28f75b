using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Exact running token count of a text that arrives as deltas, keeping only the text after the last stable piece
/// boundary (one instance per stream, not thread-safe). When the caller keeps the whole text anyway,
/// <see cref="IncrementalTokenCounter"/> counts it without this counter's copy of each delta.
/// </summary>
public sealed class StreamingTokenCounter
{
    // Commit eagerly once the tail is this long, so memory stays bounded when Total is rarely read.
    private const int EagerCommitLength = 4096;

    // Thousands of streams hold a counter each; the tail grows only when Total is read rarely.
    private const int InitialTailLength = 256;

    private readonly IncrementalTokenCounter _core;
    private char[] _tail = new char[InitialTailLength];
    private int _length;
    private long _appended;

    internal StreamingTokenCounter(ITokenCounterCore counter) => _core = new IncrementalTokenCounter(counter);

    /// <summary>Characters appended so far.</summary>
    public long Length => _appended;

    /// <summary>Characters after the committed boundary, re-counted at each read of <see cref="Total"/>.</summary>
    internal int TailLength => _length;

    /// <summary>Appends the next delta of the stream.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(ReadOnlySpan<char> delta)
    {
        // Hot path, once per delta: copy into the preallocated tail; everything else waits for Total.
        int length = _length;
        int end = length + delta.Length;
        if (end < _tail.Length)
        {
            delta.CopyTo(new Span<char>(_tail, length, delta.Length));
            _length = end;
            _appended += delta.Length;
            return;
        }
        AppendLong(delta);
    }

    private void AppendLong(ReadOnlySpan<char> delta)
    {
        int end = _length + delta.Length;
        if (end >= _tail.Length)
        {
            Array.Resize(ref _tail, Math.Max(_tail.Length * 2, end + 1));
        }
        delta.CopyTo(_tail.AsSpan(_length));
        _length = end;
        _appended += delta.Length;
        if (end >= EagerCommitLength)
        {
            _core.Commit(_tail.AsSpan(0, _length));
            DropCommitted();
        }
    }

    /// <summary>Tokens of all text appended so far; equal to counting that text in one call.</summary>
    public int Total
    {
        get
        {
            int total = _core.CountTokens(_tail.AsSpan(0, _length));
            DropCommitted();
            return total;
        }
    }

    /// <summary>Starts a new stream.</summary>
    public void Reset()
    {
        _core.Reset();
        _length = 0;
        _appended = 0;
    }

    private void DropCommitted()
    {
        int committed = _core.CommittedChars;
        if (committed > 0)
        {
            _tail.AsSpan(committed, _length - committed).CopyTo(_tail);
            _length -= committed;
            _core.DropCommitted();
        }
    }
}

/// <summary>What the streaming counters need from a counter; lets tests run them over any one-shot counter.</summary>
internal interface ITokenCounterCore
{
    /// <summary>
    /// Tokens of <paramref name="text"/>, which starts at <paramref name="offset"/> of a text that only grows: a long
    /// piece at its end is merged through <paramref name="longPiece"/> (created when first needed), which keeps its
    /// encoding for the next count.
    /// </summary>
    int CountTokens(ReadOnlySpan<char> text, ref LongPieceCache? longPiece, int offset);

    /// <summary>
    /// As above, and in <paramref name="tokensBefore"/> the tokens of <c>text[..boundary]</c> in the same pass when
    /// <paramref name="boundary"/> is stable (<see cref="IncrementalTokenCounter.IsStableBoundary"/>).
    /// </summary>
    int CountTokens(ReadOnlySpan<char> text, int boundary, out int tokensBefore, ref LongPieceCache? longPiece, int offset);
}
