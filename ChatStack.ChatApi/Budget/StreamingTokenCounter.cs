using System.Text;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// Counts a text that arrives in deltas, exactly (the same total as counting the final text once) and in linear
/// time. It keeps <c>committed</c> = tokens of the text up to a pre-tokenizer piece boundary that no later
/// delta can move, and re-counts only the tail after it. Committing every piece but the last is wrong:
/// contractions and whitespace merge across deltas (" couldn" + "'t"). A boundary is safe once at least
/// <see cref="Lookahead"/> characters follow it and it is not inside the trailing whitespace run
/// (see /work/shared/notes/tokenizers.md, where this design matched a full recount at every checkpoint).
/// </summary>
internal sealed class StreamingTokenCounter(ITokenCounter counter)
{
    /// <summary>Characters that must follow a boundary before it is final (pieces look ahead at most 3, <c>'ll</c>).</summary>
    public const int Lookahead = 16;

    // Without spaces (CJK) fall back to the pre-tokenizer, but only once the tail is long enough to be worth it.
    private const int PieceScanThreshold = 64;

    private readonly StringBuilder _text = new();
    private int _committedChars;
    private int _committedTokens;

    public ITokenCounter Counter => counter;

    /// <summary>Everything appended so far.</summary>
    public string Text => _text.ToString();

    public int Length => _text.Length;

    // The last exact count, and the UTF-8 bytes appended since: no byte-level BPE token is shorter than a byte.
    private int _lastCount;
    private int _bytesSinceCount;

    /// <summary>
    /// The count cannot be above this: the last exact count plus one token per UTF-8 byte added since. Lets a
    /// caller count exactly only when a threshold (checkpoint, budget) might have been crossed.
    /// </summary>
    public int UpperBound => _lastCount + _bytesSinceCount;

    /// <summary>Appends a delta without counting it.</summary>
    public void Add(ReadOnlySpan<char> delta)
    {
        _text.Append(delta);
        _bytesSinceCount += System.Text.Encoding.UTF8.GetByteCount(delta);
    }

    /// <summary>Appends a delta and returns the exact token count of all text so far.</summary>
    public int Append(ReadOnlySpan<char> delta)
    {
        Add(delta);
        return Count();
    }

    /// <summary>The exact token count of all text so far; moves the committed boundary forward when it can.</summary>
    public int Count()
    {
        var tail = _text.ToString(_committedChars, _text.Length - _committedChars);
        var total = _committedTokens + counter.Count(tail);
        (_lastCount, _bytesSinceCount) = (total, 0);
        var boundary = FindBoundary(tail);
        if (boundary > 0)
        {
            _committedTokens += counter.Count(tail.AsSpan(0, boundary));
            _committedChars += boundary;
        }

        return total;
    }

    /// <summary>Offset in <paramref name="tail"/> of a piece boundary no later delta can move, or 0.</summary>
    private int FindBoundary(string tail)
    {
        var limit = tail.Length - Lookahead;
        if (limit <= 0)
        {
            return 0;
        }

        // The last space that follows a non-space: a piece ends before it and the next one starts with it.
        for (var i = limit; i > 0; i--)
        {
            if (tail[i] == ' ' && !char.IsWhiteSpace(tail[i - 1]))
            {
                return i;
            }
        }

        if (tail.Length < PieceScanThreshold)
        {
            return 0;
        }

        var boundary = 0;
        foreach (var (offset, length) in counter.Pieces(tail))
        {
            var end = offset + length;
            if (end > limit)
            {
                break;
            }

            if (!char.IsWhiteSpace(tail[end - 1]) && !char.IsWhiteSpace(tail[end]))
            {
                boundary = end;
            }
        }

        return boundary;
    }
}
