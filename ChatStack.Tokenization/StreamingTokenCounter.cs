using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Exact running token count of a text that arrives as deltas (one instance per stream, not thread-safe).
/// </summary>
/// <remarks>
/// Keeps <c>committed</c> = tokens of the text before a piece boundary that no later delta can move, and re-counts
/// only the tail after it. A position p is such a boundary when no split-pattern alternative can match across it
/// and no alternative started before it reads past it, so text before p splits the same whatever follows:
/// <list type="bullet">
/// <item>text[p] is U+0020 and text[p-1] is not whitespace (a space only starts pieces or extends whitespace runs);</item>
/// <item>text[p-1] is a BMP letter and text[p] is BMP punctuation/symbol other than an apostrophe (ends every
/// letter alternative, cannot start a contraction; gives CJK text boundaries at its punctuation).</item>
/// </list>
/// Committing every piece but the last is NOT exact: contractions and whitespace runs merge across deltas.
/// </remarks>
public sealed class StreamingTokenCounter
{
    // Commit eagerly once the tail is this long, so memory stays bounded when Total is rarely read.
    private const int EagerCommitLength = 4096;

    // Thousands of streams hold a counter each; the tail grows only when Total is read rarely.
    private const int InitialTailLength = 256;

    private readonly ITokenCounterCore _counter;
    private char[] _tail = new char[InitialTailLength];
    private int _length;
    private int _scanned; // positions below this (in _tail) were checked and are not boundaries
    private int _committed;
    private int _total;
    private bool _dirty;
    private long _appended;

    internal StreamingTokenCounter(ITokenCounterCore counter) => _counter = counter;

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
            _dirty = true;
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
        _dirty = true;
        if (end >= EagerCommitLength)
        {
            Commit();
        }
    }

    /// <summary>Tokens of all text appended so far; equal to counting that text in one call.</summary>
    public int Total
    {
        get
        {
            if (_dirty)
            {
                Commit();
                _total = _committed + _counter.CountTokens(_tail.AsSpan(0, _length));
                _dirty = false;
            }
            return _total;
        }
    }

    /// <summary>Starts a new stream.</summary>
    public void Reset()
    {
        _length = _scanned = _committed = _total = 0;
        _appended = 0;
        _dirty = false;
    }

    private void Commit()
    {
        ReadOnlySpan<char> t = _tail.AsSpan(0, _length);
        int from = Math.Max(_scanned, 1);
        int p = -1;
        for (int k = t.Length - 1; k >= from; k--)
        {
            if (IsStableBoundary(t, k))
            {
                p = k;
                break;
            }
        }
        _scanned = t.Length;
        if (p <= 0)
        {
            return;
        }
        _committed += _counter.CountTokens(t[..p]);
        t[p..].CopyTo(_tail);
        _length -= p;
        _scanned = _length;
    }

    internal static bool IsStableBoundary(ReadOnlySpan<char> t, int p)
    {
        char c = t[p], prev = t[p - 1];
        if (c == ' ')
        {
            return !char.IsWhiteSpace(prev);
        }
        if (char.IsSurrogate(c) || char.IsSurrogate(prev) || c == '\'')
        {
            return false;
        }
        return Scalars.IsLetter(Scalars.BmpClass(prev)) && Scalars.BmpClass(c) == ScalarClass.Other;
    }
}

/// <summary>What the streaming counter needs from a counter; lets tests run it over any one-shot counter.</summary>
internal interface ITokenCounterCore
{
    int CountTokens(ReadOnlySpan<char> text);
}
