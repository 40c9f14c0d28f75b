using System.Globalization;
using System.Runtime.CompilerServices;

namespace ChatStack.Tokenization;

/// <summary>
/// Classes of Unicode scalar values as the tiktoken split patterns see them (Rust regex, Unicode semantics).
/// Classification is per scalar value, never per UTF-16 half: that is the bug this library exists to avoid.
/// </summary>
internal enum ScalarClass : byte
{
    /// <summary>Anything that is not a letter, number, mark or whitespace (punctuation, symbols, Cf such as U+FEFF, U+FFFD).</summary>
    Other = 0,
    /// <summary>\r or \n.</summary>
    LineBreak,
    /// <summary>\s (Unicode White_Space) other than \r and \n.</summary>
    Space,
    /// <summary>\p{N}: Nd, Nl, No.</summary>
    Number,
    /// <summary>Lu, Lt: o200k's "upper" class only.</summary>
    Upper,
    /// <summary>Ll: o200k's "lower" class only.</summary>
    Lower,
    /// <summary>Lm, Lo: in both of o200k's upper and lower classes.</summary>
    LetterOther,
    /// <summary>\p{M}: not a letter (cl100k sees it as "other"), but in both of o200k's letter classes.</summary>
    Mark,
}

internal static class Scalars
{
    // One byte per BMP code unit; surrogates are resolved to scalar values by ClassAt.
    private static readonly ScalarClass[] s_bmp = BuildBmp();

    private static ScalarClass[] BuildBmp()
    {
        var table = new ScalarClass[0x10000];
        for (int c = 0; c < table.Length; c++)
        {
            table[c] = char.IsSurrogate((char)c) ? ScalarClass.Other : Classify(c);
        }
        return table;
    }

    internal static ScalarClass Classify(int codePoint)
    {
        if (codePoint is '\r' or '\n')
        {
            return ScalarClass.LineBreak;
        }
        // char.IsWhiteSpace is exactly Unicode White_Space (Zs, Zl, Zp, U+0009-000D, U+0085), as Rust's \s.
        if (codePoint < 0x10000 && char.IsWhiteSpace((char)codePoint))
        {
            return ScalarClass.Space;
        }
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.TitlecaseLetter => ScalarClass.Upper,
            UnicodeCategory.LowercaseLetter => ScalarClass.Lower,
            UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => ScalarClass.LetterOther,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => ScalarClass.Number,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => ScalarClass.Mark,
            _ => ScalarClass.Other,
        };
    }

    /// <summary>
    /// Class of the scalar value starting at <paramref name="i"/> and its length in UTF-16 code units.
    /// A lone surrogate is U+FFFD (Other), as it becomes when a JS string is UTF-8 encoded for tiktoken.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ScalarClass ClassAt(ReadOnlySpan<char> s, int i, out int length)
    {
        char c = s[i];
        if (!char.IsSurrogate(c))
        {
            length = 1;
            return s_bmp[c];
        }
        return AstralClassAt(s, i, out length);
    }

    private static ScalarClass AstralClassAt(ReadOnlySpan<char> s, int i, out int length)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            length = 2;
            return Classify(char.ConvertToUtf32(c, s[i + 1]));
        }
        length = 1;
        return ScalarClass.Other;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ScalarClass BmpClass(char c) => s_bmp[c];

    internal static bool IsLetter(ScalarClass c) => c is ScalarClass.Upper or ScalarClass.Lower or ScalarClass.LetterOther;
}
