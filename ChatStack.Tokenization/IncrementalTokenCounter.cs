using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Exact running token count of a text that the caller keeps and only ever extends: each call passes all the text
/// so far, and only what follows the last stable piece boundary is counted again. One per text, not thread-safe.
/// </summary>
/// <remarks>
/// The counter keeps no copy of the text, so its cost over counting the final text once is only the re-count of
/// the unfinished piece at each call. Use it when the text is kept anyway (a chat answer being persisted); use
/// <see cref="StreamingTokenCounter"/> when only the count is wanted.
/// <para>
/// A position p is a stable boundary when no split-pattern alternative can match across it and no alternative
/// started before it reads past it, so text before p splits the same whatever follows (<see cref="IsStableBoundary"/>).
/// Committing every piece but the last is NOT exact: contractions and whitespace runs merge across deltas.
/// </para>
/// </remarks>
public sealed class IncrementalTokenCounter
{
    private readonly ITokenCounterCore _counter;
    private int _committedChars; // text before this offset is counted for good
    private int _committedTokens;
    private int _scanned; // offsets below this were checked and are not stable boundaries
    private int _length = -1; // length of the text at the last count
    private int _total;
    private LongPieceCache? _longPiece; // the encoding of a long piece at the end of the text, while it grows

    // For Estimate, fed by Appended: a delta that starts with an ASCII character is estimated at the characters per
    // token learned from the last mostly-ASCII stretch between two counts, one that starts with a surrogate (astral
    // letters and digits, emoji: 4 UTF-8 bytes a scalar, often 2-4 tokens) at 1.5 tokens per UTF-16 unit, any other
    // at one per character (CJK comes close; accented letters err early). Errors should be early (an extra count),
    // not late: whitespace runs reach dozens of characters per token, so the learned rate is capped, or a checkpoint
    // after such a run would be hundreds of tokens late if CJK or emoji followed. Measured on the benchmark answer,
    // astral deltas at one token per unit made the late checkpoints (p99 97 tokens apart, 79 at 1.5, for 2% more counts).
    private const double InitialAsciiCharsPerToken = 3; // below English (~4.3): a first checkpoint early, not late
    private const double MaxAsciiCharsPerToken = 6;
    private const double AstralTokensPerUnit = 1.5;
    private const int MinTokensToLearn = 8;
    private int _asciiSinceCount;
    private int _astralSinceCount;
    private int _otherSinceCount;
    private double _tokensPerAsciiChar = 1 / InitialAsciiCharsPerToken;

    internal IncrementalTokenCounter(ITokenCounterCore counter) => _counter = counter;

    /// <summary>Characters before the committed boundary: counted once, never read again.</summary>
    internal int CommittedChars => _committedChars;

    /// <summary>Tokens of the text before <see cref="CommittedChars"/>.</summary>
    internal int CommittedTokens => _committedTokens;

    /// <summary>
    /// Tokens of <c>text[..length]</c>, from a committed state seen earlier (<paramref name="committedChars"/> ≤
    /// <paramref name="length"/>, with its <paramref name="committedTokens"/>): a stable boundary stays one whatever
    /// follows, so the text before it counts the same in any longer prefix. Reads nothing of this counter's state.
    /// </summary>
    internal int CountPrefix(ReadOnlySpan<char> text, int length, int committedChars, int committedTokens) =>
        committedTokens + _counter.CountTokens(text[committedChars..length], ref _longPiece, committedChars);

    /// <summary>
    /// Tokens of <paramref name="textSoFar"/>, equal to counting it in one call. It must begin with the text of the
    /// previous call (text is only appended); only the length is checked.
    /// </summary>
    // Not inlined: called once a checkpoint from a loop over deltas, it would swell that loop (its boundary scan,
    // the estimate's learning) and slow every delta; see TokenCounter.CountTokens.
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int CountTokens(ReadOnlySpan<char> textSoFar)
    {
        if (textSoFar.Length == _length)
        {
            return _total;
        }
        if (textSoFar.Length < _length)
        {
            throw new ArgumentException(
                $"The text has {textSoFar.Length} characters, fewer than the {_length} of the previous call; an incremental count only follows text that grows.",
                nameof(textSoFar));
        }
        // One pass from the committed boundary: the settled pieces and the unfinished tail in the same loop, so the
        // tail's cache lookup overlaps the others' instead of paying a cold lookup of its own (~100 ns a checkpoint).
        int boundary = LastStableBoundary(textSoFar);
        int total = _committedTokens;
        if (boundary < 0)
        {
            total += _counter.CountTokens(textSoFar[_committedChars..], ref _longPiece, _committedChars);
        }
        else
        {
            int counted = _counter.CountTokens(textSoFar[_committedChars..], boundary - _committedChars, out int settled, ref _longPiece, _committedChars);
            total += counted;
            _committedTokens += settled;
            _committedChars = boundary;
            ForgetCommittedPiece();
        }
        _length = textSoFar.Length;
        Learn(total);
        return total;
    }

    /// <summary>
    /// A count that the text cannot exceed once it is <paramref name="lengthSoFar"/> characters long, without
    /// counting: the tokens before the committed boundary plus three per UTF-16 unit after it (a unit is at most three
    /// UTF-8 bytes, and no token is shorter than a byte). Sound whatever was appended, so a limit checked against it
    /// is found at the exact delta that reaches it.
    /// </summary>
    public int UpperBound(int lengthSoFar) => _committedTokens + 3 * (lengthSoFar - _committedChars);

    /// <summary>
    /// Tells the estimate about a delta the caller appended: one branch and an add, cheap enough for every delta.
    /// Only <see cref="Estimate"/> reads it; counts never depend on it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Appended(ReadOnlySpan<char> delta)
    {
        if (delta.IsEmpty)
        {
            return;
        }
        if (delta[0] <= '\u007f')
        {
            _asciiSinceCount += delta.Length;
        }
        else if (char.IsSurrogate(delta[0]))
        {
            _astralSinceCount += delta.Length;
        }
        else
        {
            _otherSinceCount += delta.Length;
        }
    }

    /// <summary>
    /// A guess at the count now, for deciding when a count is worth taking ("about every 50 tokens"), never as a
    /// count: the last count plus the deltas <see cref="Appended"/> since, estimated by their first character.
    /// </summary>
    public int Estimate => _total + (int)(_asciiSinceCount * _tokensPerAsciiChar + _astralSinceCount * AstralTokensPerUnit) + _otherSinceCount;

    /// <summary>
    /// Whether counting the text, now <paramref name="lengthSoFar"/> characters long, is due: the estimate reached
    /// <paramref name="checkpoint"/> (about when it is crossed), or the count may have reached <paramref name="limit"/>
    /// (<see cref="UpperBound"/>: a limit is found at the very delta that reaches it).
    /// </summary>
    public bool CountDue(int lengthSoFar, int checkpoint, int limit) => Estimate >= checkpoint || UpperBound(lengthSoFar) >= limit;

    private void Learn(int total)
    {
        int chars = _asciiSinceCount + _otherSinceCount + _astralSinceCount, tokens = total - _total;
        // Mostly ASCII: all its tokens taken as ASCII tokens, which errs towards a low rate (early counts).
        if (chars > 0 && tokens >= MinTokensToLearn && (_otherSinceCount + _astralSinceCount) * 10 <= chars)
        {
            _tokensPerAsciiChar = 1 / Math.Clamp((double)_asciiSinceCount / tokens, 1, MaxAsciiCharsPerToken);
        }
        (_total, _asciiSinceCount, _otherSinceCount, _astralSinceCount) = (total, 0, 0, 0);
    }

    /// <summary>Starts over for a new text.</summary>
    public void Reset()
    {
        _committedChars = _committedTokens = _scanned = _total = _asciiSinceCount = _otherSinceCount = _astralSinceCount = 0;
        _length = -1;
        _tokensPerAsciiChar = 1 / InitialAsciiCharsPerToken;
        _longPiece = null;
    }

    /// <summary>Moves the committed boundary to the last stable boundary of <paramref name="text"/>, counting what it passes.</summary>
    internal void Commit(ReadOnlySpan<char> text)
    {
        _length = -1; // the text may have grown since the last count
        int boundary = LastStableBoundary(text);
        if (boundary >= 0)
        {
            _committedTokens += _counter.CountTokens(text[_committedChars..boundary], ref _longPiece, _committedChars);
            _committedChars = boundary;
            ForgetCommittedPiece();
        }
    }

    // A kept long piece before the committed boundary is counted for good: its memory goes.
    private void ForgetCommittedPiece()
    {
        if (_longPiece is { } piece && piece.Start < _committedChars)
        {
            _longPiece = null;
        }
    }

    /// <summary>Bytes merged through the long-piece cache, for tests.</summary>
    internal long LongPieceMergedBytes => _longPiece?.MergedBytes ?? 0;

    /// <summary>Counts of the long-piece cache that had to merge from further back, for tests.</summary>
    internal int LongPieceWentBack => _longPiece?.WentBack ?? 0;

    /// <summary>The last stable boundary of <paramref name="text"/> after the committed one, or -1; offsets before the end are not checked again.</summary>
    private int LastStableBoundary(ReadOnlySpan<char> text)
    {
        int from = Math.Max(_scanned, _committedChars + 1);
        _scanned = text.Length;
        for (int p = text.Length - 1; p >= from; p--)
        {
            if (IsStableBoundary(text, p))
            {
                return p;
            }
        }
        return -1;
    }

    /// <summary>For a caller that drops its committed text: offsets now start at the committed boundary.</summary>
    internal void DropCommitted()
    {
        _scanned -= _committedChars;
        _length = _length < 0 ? -1 : _length - _committedChars;
        _longPiece?.Shift(_committedChars);
        _committedChars = 0;
    }

    /// <summary>
    /// Whether the text before <paramref name="p"/> splits into the same pieces whatever follows <c>t[..(p + 1)]</c>
    /// (or <c>t</c>, when it is longer). Conservative: false where unsure; every rule is a property test.
    /// </summary>
    internal static bool IsStableBoundary(ReadOnlySpan<char> t, int p)
    {
        char c = t[p], prev = t[p - 1];
        if (char.IsHighSurrogate(prev) && char.IsLowSurrogate(c))
        {
            return false; // inside a scalar value
        }
        if (c == ' ')
        {
            // A space ends no piece. After a non-space it starts one; after whitespace, the run before it gives
            // it up to the next piece once that piece's first scalar is known to be no whitespace.
            return !IsWhitespace(prev) || (p + 1 < t.Length && !IsWhitespace(t[p + 1]));
        }
        if (char.IsHighSurrogate(c) && p + 1 == t.Length)
        {
            return false; // the scalar at p is not known yet
        }
        ScalarClass after = Scalars.ClassAt(t, p, out _);
        if (prev is '\r' or '\n')
        {
            // Line breaks end a whitespace run, or the [\r\n/]* tail of a punctuation piece ('/' in o200k).
            return after is not (ScalarClass.Space or ScalarClass.LineBreak) && c != '/';
        }
        if (c == '\'')
        {
            return false; // may start a contraction of the letters before it
        }
        ScalarClass before = ClassBefore(t, p);
        // Letter and number runs end where their class ends; "other" before a number cannot be a letter's prefix.
        return Scalars.IsLetter(before) ? after is ScalarClass.Other or ScalarClass.Number
            : before == ScalarClass.Number ? after == ScalarClass.Other || Scalars.IsLetter(after)
            : before == ScalarClass.Other && after == ScalarClass.Number;
    }

    private static bool IsWhitespace(char c) => Scalars.BmpClass(c) is ScalarClass.Space or ScalarClass.LineBreak;

    /// <summary>Class of the scalar value that ends at <paramref name="p"/> (a lone surrogate is U+FFFD, "other").</summary>
    private static ScalarClass ClassBefore(ReadOnlySpan<char> t, int p)
    {
        char prev = t[p - 1];
        if (!char.IsSurrogate(prev))
        {
            return Scalars.BmpClass(prev);
        }
        return char.IsLowSurrogate(prev) && p >= 2 && char.IsHighSurrogate(t[p - 2])
            ? Scalars.ClassAt(t, p - 2, out _)
            : ScalarClass.Other;
    }
}
