using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Decides, delta by delta, when a streamed text that the caller keeps is counted exactly and when a delta may be
/// shown, for a caller that must stop at a token limit: counts stay few and linear even inside one long unbroken
/// piece, and the text shown is never more than the text counted. One per text, not thread-safe.
/// </summary>
/// <remarks>
/// <see cref="IncrementalTokenCounter"/> re-counts the unfinished piece at each count. In ordinary text that is a word
/// or two; inside one long piece (a run of '=' or of spaces, letters with no break) it is the whole run so far, so a
/// count at every checkpoint, or at every delta once the sound upper bound meets the limit, would split the run again
/// each time: the square of the run. (Merging, the costly part, is done only for what the run gained: see
/// <see cref="LongPieceCache"/>.) Once a count leaves more than <see cref="LongRun"/> characters unsettled, the gate
/// holds deltas back and counts when they add up to a quarter of the unsettled run (at least 256 characters): the run
/// grows by a quarter between counts, so splitting reads about five times the final run in all, and held text waits at
/// most about a fifth of the time the run has streamed, or, given a clock, at most <c>maxHold</c> (a count at most that
/// often reads the run once more, which is cheap now that it is not merged again). A limit reached inside a held batch
/// is found by bisecting the held deltas' ends.
/// </remarks>
public sealed class CountGate(IncrementalTokenCounter exact, TimeProvider? clock = null, TimeSpan maxHold = default)
{
    /// <summary>Characters left unsettled by a count past which the text is in a long run and deltas are held.</summary>
    public const int LongRun = 1024;

    private const int MinBatch = 256;
    private readonly List<int> _heldEnds = [];
    private int _countedLength = -1;
    private int _countedTokens;
    // Holding: the length that completes a batch. Otherwise a limit for the sound bound, which passes it once LongRun
    // characters went uncounted (committed tokens + 3 per character): one comparison a delta, as before the gate.
    private int _countAt = 3 * LongRun + 1;
    private long _heldSince; // the clock's timestamp of the first held delta

    /// <summary>Characters the caller may have shown: all but the held ones (the text's length when none are).</summary>
    public int Shown(int lengthSoFar) => Holding ? _countedLength : lengthSoFar;

    /// <summary>Whether deltas are held until the next count (the text is inside a long run).</summary>
    public bool Holding { get; private set; }

    /// <summary>
    /// Takes a delta the caller appended; the text is now <paramref name="lengthSoFar"/> characters long. True when the
    /// caller may show it now; false when it is held until <see cref="Count"/> returns the length that may be shown.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Appended(ReadOnlySpan<char> delta, int lengthSoFar)
    {
        exact.Appended(delta);
        if (Holding)
        {
            if (_heldEnds.Count == 0 && clock is not null)
            {
                _heldSince = clock.GetTimestamp();
            }

            _heldEnds.Add(lengthSoFar);
            return false;
        }

        return true;
    }

    /// <summary>
    /// Whether a count is due: in a long run, once the held text makes a batch or its first delta was held for
    /// <c>maxHold</c>; otherwise when the counter's estimate reaches <paramref name="checkpoint"/> or its sound bound
    /// reaches <paramref name="limit"/> (<see cref="IncrementalTokenCounter.CountDue"/>), or when more than
    /// <see cref="LongRun"/> characters went uncounted.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool CountDue(int lengthSoFar, int checkpoint, int limit) =>
        Holding ? lengthSoFar >= _countAt || HeldTooLong() : exact.CountDue(lengthSoFar, checkpoint, Math.Min(limit, _countAt));

    private bool HeldTooLong() => clock is not null && _heldEnds.Count > 0 && clock.GetElapsedTime(_heldSince) >= maxHold;

    /// <summary>
    /// Counts <paramref name="textSoFar"/> exactly. Returns the length the text keeps and its tokens: all of it, unless
    /// held deltas reached <paramref name="limit"/>; then the end of a held delta whose prefix reaches the limit while
    /// the one before it stays under (found by bisection), and the caller drops what follows. Everything up to the
    /// returned length may be shown. Once the text was cut, counting it again at that length returns the same count.
    /// </summary>
    public (int Length, int Tokens) Count(ReadOnlySpan<char> textSoFar, int limit)
    {
        if (textSoFar.Length == _countedLength)
        {
            return (_countedLength, _countedTokens);
        }

        // The committed state at the previous count lies at or before the shown text: held prefixes count from it.
        var (committedChars, committedTokens) = (exact.CommittedChars, exact.CommittedTokens);
        int tokens = exact.CountTokens(textSoFar), length = textSoFar.Length;
        if (tokens >= limit && _heldEnds.Count > 1)
        {
            // The shown text counted under the limit (the caller stops at a count that reaches it), the whole text
            // reaches it. Counts of growing text almost always grow; where they do not, this finds a crossing
            // that may be later than the first, still a delta end whose count reaches the limit.
            int under = -1, over = _heldEnds.Count - 1;
            while (over - under > 1)
            {
                int mid = (under + over) / 2;
                int prefix = exact.CountPrefix(textSoFar, _heldEnds[mid], committedChars, committedTokens);
                if (prefix >= limit)
                {
                    (over, tokens) = (mid, prefix);
                }
                else
                {
                    under = mid;
                }
            }

            length = _heldEnds[over];
        }

        _heldEnds.Clear();
        (_countedLength, _countedTokens) = (length, tokens);
        int unsettled = length - exact.CommittedChars;
        Holding = unsettled > LongRun;
        // Outside a run, as a bound: the sound bound passes committed tokens + 3 × LongRun once LongRun characters go uncounted.
        _countAt = Holding ? length + Math.Max(MinBatch, unsettled / 4) : exact.CommittedTokens + 3 * LongRun + 1;
        return (length, tokens);
    }
}
