namespace ChatStack.ChatApi.Agent;

internal static class TextShortening
{
    /// <summary>
    /// <paramref name="text"/> cut to at most <paramref name="maxChars"/> UTF-16 units, the last of them an ellipsis
    /// when anything was cut, never between the halves of a surrogate pair (a half becomes U+FFFD once stored).
    /// </summary>
    public static string Shorten(this string text, int maxChars)
    {
        if (text.Length <= maxChars)
        {
            return text;
        }

        var cut = maxChars - 1;
        if (cut > 0 && char.IsHighSurrogate(text[cut - 1]))
        {
            cut--;
        }

        return string.Concat(text.AsSpan(0, cut), "…");
    }
}
