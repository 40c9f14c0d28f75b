using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Hand-written equivalents of tiktoken's split patterns, walking Unicode scalar values with the same
/// leftmost-first alternation and greedy backtracking as Rust's fancy_regex. Each method returns the end
/// (exclusive) of the piece that starts at <c>i</c>; pieces partition the text.
/// </summary>
internal static class PieceSplitter
{
    // cl100k_base:
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    internal static int NextCl100k(ReadOnlySpan<char> s, int i)
    {
        int n = s.Length;
        if (s[i] == '\'')
        {
            int c = ContractionLength(s, i);
            if (c > 0)
            {
                return i + c;
            }
        }

        ScalarClass c0 = Scalars.ClassAt(s, i, out int l0);
        if (Scalars.IsLetter(c0))
        {
            return LetterRun(s, i + l0);
        }
        if (IsPrefix(c0) && i + l0 < n && Scalars.IsLetter(Scalars.ClassAt(s, i + l0, out int l1)))
        {
            return LetterRun(s, i + l0 + l1);
        }
        if (c0 == ScalarClass.Number)
        {
            return NumberRun(s, i, l0);
        }
        int o = OtherRun(s, i, c0, l0, cl100k: true);
        if (o >= 0)
        {
            return ScanBreaks(s, o, alsoSlash: false);
        }
        return Whitespace(s, i);
    }

    // o200k_base:
    // [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
    // |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
    // |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    internal static int NextO200k(ReadOnlySpan<char> s, int i)
    {
        int n = s.Length;
        ScalarClass c0 = Scalars.ClassAt(s, i, out int l0);
        bool prefix = IsPrefix(c0) && i + l0 < n;

        // Alternative 1, first with the optional prefix taken (greedy ?), then without it.
        int e;
        if (prefix && (e = UpperStarLowerPlus(s, i + l0)) >= 0)
        {
            return e;
        }
        if ((e = UpperStarLowerPlus(s, i)) >= 0)
        {
            return e;
        }
        // Alternative 2.
        if (prefix && (e = UpperPlusLowerStar(s, i + l0)) >= 0)
        {
            return e;
        }
        if ((e = UpperPlusLowerStar(s, i)) >= 0)
        {
            return e;
        }
        if (c0 == ScalarClass.Number)
        {
            return NumberRun(s, i, l0);
        }
        int o = OtherRun(s, i, c0, l0, cl100k: false);
        if (o >= 0)
        {
            return ScanBreaks(s, o, alsoSlash: true);
        }
        return Whitespace(s, i);
    }

    /// <summary>[^\r\n\p{L}\p{N}]: whitespace other than line breaks, marks and "other".</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsPrefix(ScalarClass c) => c is ScalarClass.Space or ScalarClass.Mark or ScalarClass.Other;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsO200kUpper(ScalarClass c) => c is ScalarClass.Upper or ScalarClass.LetterOther or ScalarClass.Mark;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsO200kLower(ScalarClass c) => c is ScalarClass.Lower or ScalarClass.LetterOther or ScalarClass.Mark;

    private static int LetterRun(ReadOnlySpan<char> s, int j)
    {
        while (j < s.Length && Scalars.IsLetter(Scalars.ClassAt(s, j, out int l)))
        {
            j += l;
        }
        return j;
    }

    private static int NumberRun(ReadOnlySpan<char> s, int i, int l0)
    {
        int j = i + l0;
        for (int k = 1; k < 3 && j < s.Length && Scalars.ClassAt(s, j, out int l) == ScalarClass.Number; k++)
        {
            j += l;
        }
        return j;
    }

    /// <summary>[Upper]*[Lower]+C? from <paramref name="st"/>, with the backtracking of the greedy star; -1 if no match.</summary>
    private static int UpperStarLowerPlus(ReadOnlySpan<char> s, int st)
    {
        int n = s.Length;
        int u = st;
        int lastLowerEnd = -1; // end of the last scalar in the upper run that is also in the lower class
        ScalarClass c = default;
        int l = 0;
        while (u < n)
        {
            c = Scalars.ClassAt(s, u, out l);
            if (!IsO200kUpper(c))
            {
                break;
            }
            u += l;
            if (IsO200kLower(c))
            {
                lastLowerEnd = u;
            }
        }
        if (u < n && IsO200kLower(c))
        {
            // The scalar after the upper run is lower-only (Ll): [Lower]+ runs on from there.
            int j = u + l;
            while (j < n && IsO200kLower(Scalars.ClassAt(s, j, out int lj)))
            {
                j += lj;
            }
            return j + ContractionLength(s, j);
        }
        if (lastLowerEnd >= 0)
        {
            // Backtracking gives back scalars until one in both classes can start [Lower]+; it matches that one only.
            return lastLowerEnd + ContractionLength(s, lastLowerEnd);
        }
        return -1;
    }

    /// <summary>[Upper]+[Lower]*C? from <paramref name="st"/>; -1 if no match.</summary>
    private static int UpperPlusLowerStar(ReadOnlySpan<char> s, int st)
    {
        int n = s.Length;
        int j = st;
        while (j < n && IsO200kUpper(Scalars.ClassAt(s, j, out int l)))
        {
            j += l;
        }
        if (j == st)
        {
            return -1;
        }
        while (j < n && IsO200kLower(Scalars.ClassAt(s, j, out int l)))
        {
            j += l;
        }
        return j + ContractionLength(s, j);
    }

    /// <summary>" ?[^\s\p{L}\p{N}]+": end of the run, or -1 if it does not match at <paramref name="i"/>.</summary>
    private static int OtherRun(ReadOnlySpan<char> s, int i, ScalarClass c0, int l0, bool cl100k)
    {
        int n = s.Length;
        int j;
        if (s[i] == ' ' && i + 1 < n && IsOther(Scalars.ClassAt(s, i + 1, out int l1), cl100k))
        {
            j = i + 1 + l1;
        }
        else if (IsOther(c0, cl100k))
        {
            j = i + l0;
        }
        else
        {
            return -1;
        }
        while (j < n && IsOther(Scalars.ClassAt(s, j, out int l), cl100k))
        {
            j += l;
        }
        return j;
    }

    // Marks are [^\s\p{L}\p{N}] in both patterns; in o200k they are caught by the letter alternatives first.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsOther(ScalarClass c, bool cl100k) => c is ScalarClass.Other or ScalarClass.Mark;

    private static int ScanBreaks(ReadOnlySpan<char> s, int j, bool alsoSlash)
    {
        while (j < s.Length && (s[j] is '\r' or '\n' || (alsoSlash && s[j] == '/')))
        {
            j++;
        }
        return j;
    }

    /// <summary>\s*[\r\n]+|\s+(?!\S)|\s+ at a whitespace scalar.</summary>
    private static int Whitespace(ReadOnlySpan<char> s, int i)
    {
        int n = s.Length;
        int j = i;
        int lastBreakEnd = -1;
        // All whitespace is in the BMP.
        while (j < n && !char.IsSurrogate(s[j]) && Scalars.BmpClass(s[j]) is ScalarClass.Space or ScalarClass.LineBreak)
        {
            if (s[j] is '\r' or '\n')
            {
                lastBreakEnd = j + 1;
            }
            j++;
        }
        if (lastBreakEnd >= 0)
        {
            return lastBreakEnd; // \s* gives back up to the last line break, [\r\n]+ takes it.
        }
        if (j == n || j - i == 1)
        {
            return j; // at the end (?!\S) holds; a single space before a non-space falls to \s+.
        }
        return j - 1; // leave the last space to prefix the next piece.
    }

    /// <summary>Length of (?i:'s|'t|'re|'ve|'m|'ll|'d) at <paramref name="i"/>, or 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int ContractionLength(ReadOnlySpan<char> s, int i)
    {
        if (i + 1 >= s.Length || s[i] != '\'')
        {
            return 0;
        }
        char a = s[i + 1];
        switch (a)
        {
            // Unicode simple case folding: U+017F LATIN SMALL LETTER LONG S folds to 's'.
            case 's' or 'S' or '\u017F' or 't' or 'T' or 'm' or 'M' or 'd' or 'D':
                return 2;
            case 'r' or 'R' or 'v' or 'V':
                return i + 2 < s.Length && s[i + 2] is 'e' or 'E' ? 3 : 0;
            case 'l' or 'L':
                return i + 2 < s.Length && s[i + 2] is 'l' or 'L' ? 3 : 0;
            default:
                return 0;
        }
    }
}
