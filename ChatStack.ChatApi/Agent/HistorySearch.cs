using System.Globalization;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// Word search over a conversation's messages for the <c>search_history</c> tool. A term matches a word it starts
/// ("cat" finds "cats", not "communicate"); in scripts written without spaces (Chinese, Japanese, Thai) it matches
/// anywhere. Words that say nothing on their own ("the", "earlier") are left out when the query has others.
/// </summary>
internal static class HistorySearch
{
    private const int SnippetChars = 160;

    private static readonly HashSet<string> StopWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "a", "an", "and", "or", "the", "of", "to", "in", "on", "at", "for", "about", "with", "from", "by", "is", "was", "were",
        "be", "it", "i", "me", "my", "you", "your", "we", "did", "do", "say", "said", "mention", "mentioned", "earlier", "before",
        "what", "which", "that", "this", "there", "any", "anything", "something", "conversation", "history", "message", "messages",
    };

    /// <summary>The distinct terms of a query, lower-cased.</summary>
    public static string[] Terms(string query)
    {
        var words = Words(query).Select(w => query.Substring(w.Start, w.Length).ToLowerInvariant()).Distinct().ToList();
        var meaningful = words.Where(w => !StopWords.Contains(w) && (w.Length > 1 || IsUnspaced(w[0]))).ToArray();
        return meaningful.Length > 0 ? meaningful : [.. words];
    }

    /// <summary>How many of <paramref name="terms"/> the text has, and where the first found one starts (-1 when none).</summary>
    public static (int Score, int FirstAt) Match(string text, IReadOnlyList<string> terms)
    {
        int score = 0, first = -1;
        foreach (var term in terms)
        {
            var at = Find(text, term);
            if (at >= 0)
            {
                score++;
                first = first < 0 ? at : Math.Min(first, at);
            }
        }

        return (score, first);
    }

    /// <summary>About <see cref="SnippetChars"/> characters of the text around <paramref name="at"/>, with ellipses where it was cut.</summary>
    public static string Snippet(string text, int at)
    {
        if (text.Length <= SnippetChars)
        {
            return text;
        }

        var start = Math.Clamp(at - SnippetChars / 4, 0, text.Length - SnippetChars);
        if (start > 0 && char.IsLowSurrogate(text[start]))
        {
            start++;
        }

        var end = Math.Min(text.Length, start + SnippetChars);
        if (end < text.Length && char.IsLowSurrogate(text[end]))
        {
            end++;
        }

        return (start > 0 ? "…" : "") + text[start..end] + (end < text.Length ? "…" : "");
    }

    private static int Find(string text, string term)
    {
        if (term.Any(IsUnspaced))
        {
            return text.IndexOf(term, StringComparison.OrdinalIgnoreCase);
        }

        foreach (var (start, length) in Words(text))
        {
            if (length >= term.Length && string.Compare(text, start, term, 0, term.Length, StringComparison.OrdinalIgnoreCase) == 0)
            {
                return start;
            }
        }

        return -1;
    }

    /// <summary>Runs of letters, digits and marks (accents, combining signs), as offsets into the text.</summary>
    internal static IEnumerable<(int Start, int Length)> Words(string text)
    {
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var inWord = i < text.Length && (char.IsLowSurrogate(text[i]) && i > 0 && char.IsHighSurrogate(text[i - 1])
                ? start >= 0 // the second half of the scalar value before it ("𝔘" is a letter)
                : char.IsLetterOrDigit(text, i) || IsMark(text[i]));
            if (inWord && start < 0)
            {
                start = i;
            }
            else if (!inWord && start >= 0)
            {
                yield return (start, i - start);
                start = -1;
            }
        }
    }

    internal static bool IsMark(char c) => CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;

    // Scripts written without spaces between words: a term may be any part of a longer run.
    private static bool IsUnspaced(char c) => c is (>= '\u3040' and <= '\u30ff') or (>= '\u3400' and <= '\u4dbf') or (>= '\u4e00' and <= '\u9fff')
        or (>= '\uf900' and <= '\ufaff') or (>= '\u0e00' and <= '\u0eff') or (>= '\u1000' and <= '\u109f') or (>= '\u1780' and <= '\u17ff');
}
