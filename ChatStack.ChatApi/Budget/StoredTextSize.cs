namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The size a text takes where it is stored, taken delta by delta up to a limit: Firestore counts a string as its
/// UTF-8 bytes (+1), and an outbox record that carries the text holds it as JSON, where System.Text.Json's default
/// encoder writes every non-ASCII UTF-16 unit and a few ASCII characters as a 6-byte <c>\uXXXX</c>. A delta is
/// taken up to the last whole scalar value that fits, never between the halves of a surrogate pair.
/// </summary>
/// <remarks>
/// A high surrogate that ends a delta takes the size of a whole pair, so its low half, in the next delta, always
/// fits: what was taken (and streamed) is never cut afterwards. Alone after all, it is stored as U+FFFD.
/// </remarks>
internal sealed class StoredTextSize(int maxBytes, bool json)
{
    private readonly int _pairBytes = json ? 12 : 4;
    private readonly int _loneBytes = json ? 6 : 3; // a half alone is stored as U+FFFD (JSON: "\uFFFD")
    private bool _pendingHigh;

    /// <summary>Bytes of what was taken, counting a trailing high surrogate as a whole pair.</summary>
    public int Bytes { get; private set; }

    public int MaxBytes => maxBytes;

    /// <summary>Whether the text was stopped short: a delta did not fit whole.</summary>
    public bool Full { get; private set; }

    /// <summary>Takes the longest prefix of <paramref name="delta"/> that keeps the text within the limit; returns its length.</summary>
    public int Take(ReadOnlySpan<char> delta)
    {
        var i = 0;
        if (_pendingHigh && delta.Length > 0)
        {
            _pendingHigh = false;
            if (char.IsLowSurrogate(delta[0]))
            {
                i = 1; // its size came with the high half
            }
            else
            {
                Bytes -= _pairBytes - _loneBytes;
            }
        }

        while (i < delta.Length)
        {
            var c = delta[i];
            var (size, length, pending) = char.IsHighSurrogate(c)
                ? i + 1 == delta.Length ? (_pairBytes, 1, true)
                : char.IsLowSurrogate(delta[i + 1]) ? (_pairBytes, 2, false) : (_loneBytes, 1, false)
                : char.IsLowSurrogate(c) ? (_loneBytes, 1, false)
                : (json ? JsonBytes(c) : Utf8Bytes(c), 1, false);
            if (Bytes + size > maxBytes)
            {
                Full = true;
                return i;
            }

            Bytes += size;
            i += length;
            _pendingHigh = pending;
        }

        return delta.Length;
    }

    /// <summary>Takes <paramref name="text"/> anew, for a text cut back after it was taken: what was dropped no longer counts.</summary>
    public void Retake(ReadOnlySpan<char> text)
    {
        (Bytes, Full, _pendingHigh) = (0, false, false);
        Take(text);
    }

    /// <summary>The stored size of a whole text (UTF-8, or as a JSON string's contents when <paramref name="json"/>).</summary>
    public static int Of(ReadOnlySpan<char> text, bool json)
    {
        var size = new StoredTextSize(int.MaxValue, json);
        size.Take(text);
        return size._pendingHigh ? size.Bytes - (size._pairBytes - size._loneBytes) : size.Bytes;
    }

    /// <summary>
    /// <paramref name="text"/> within <paramref name="maxBytes"/> UTF-8 bytes, ending in an ellipsis when anything was
    /// cut, at a scalar boundary.
    /// </summary>
    public static string Shorten(string text, int maxBytes)
    {
        var fits = new StoredTextSize(maxBytes, json: false);
        if (fits.Take(text) == text.Length)
        {
            return text;
        }

        const string Ellipsis = "…"; // 3 bytes
        var cut = new StoredTextSize(Math.Max(0, maxBytes - 3), json: false).Take(text);
        return string.Concat(text.AsSpan(0, cut), Ellipsis);
    }

    private static int Utf8Bytes(char c) => c < 0x80 ? 1 : c < 0x800 ? 2 : 3;

    // What System.Text.Json's default encoder (JavaScriptEncoder.Default) writes for one UTF-16 unit that is not a
    // surrogate: ASCII as is, but for the HTML-sensitive characters and controls; everything else escaped.
    private static int JsonBytes(char c) => c switch
    {
        '\b' or '\t' or '\n' or '\f' or '\r' or '\\' => 2,
        '"' or '&' or '\'' or '+' or '<' or '>' or '`' => 6,
        < ' ' or >= '\u007f' => 6,
        _ => 1,
    };
}
