using System.Buffers;
using System.Text;

namespace ChatStack.Tokenization;

/// <summary>
/// The byte-pair encoding of one long piece that a text is still extending (a run of '=' or of spaces, letters with
/// no break), kept by an incremental counter between its counts so that each count merges what the piece gained and
/// a few tokens before it, not the whole piece again. One per counter, not thread-safe.
/// </summary>
/// <remarks>
/// Exact by two properties of byte-pair merging with tiktoken's rule (the adjacent pair of lowest rank first, the
/// leftmost among equals), set out for the github/rust-gems <c>bpe</c> crate: the tokens of an encoding up to one of
/// its token boundaries are the encoding of the text up to there; and if the encoding of A·e ends with the token e
/// and that of e·B starts with the same token e, the encoding of A·e·B is the first without its e followed by the
/// second. So a count merges again from the start of a token a little before the end of what it knew: if the new
/// encoding starts with that very token, every token before it stands; if not, it goes back four times as far, and
/// in the end to the start of the piece. Appending can change tokens far back only on contrived inputs.
/// </remarks>
internal sealed class LongPieceCache
{
    /// <summary>Pieces at least this long are kept; shorter ones cost little to merge again.</summary>
    internal const int MinChars = 256;

    private const int InitialBackTokens = 2;

    private int _start = -1; // the piece's offset in the counter's text; -1 when none is kept
    private int _chars;      // characters whose UTF-8 is in _bytes: a high surrogate at the end is not, its pair may follow
    private byte[] _bytes = [];
    private int _byteLength;
    private int[] _ends = []; // token ends: the encoding of _bytes[.._ends[_tokens - 1]]
    private int _tokens;

    /// <summary>Offset of the kept piece in the counter's text, or -1.</summary>
    internal int Start => _start;

    /// <summary>Bytes merged by this cache's counts: the work they did, which tests bound (timings would only blur it).</summary>
    internal long MergedBytes { get; private set; }

    /// <summary>Counts whose new encoding did not start with the token they merged from, so they went further back.</summary>
    internal int WentBack { get; private set; }

    /// <summary>The counter's text lost its first <paramref name="chars"/> characters (they were committed and dropped).</summary>
    internal void Shift(int chars)
    {
        if (_start >= 0 && (_start -= chars) < 0)
        {
            Forget();
        }
    }

    internal void Forget()
    {
        _start = -1;
        _chars = _byteLength = _tokens = 0;
    }

    /// <summary>
    /// Tokens of <paramref name="piece"/>, one whole piece of the split at offset <paramref name="start"/> of a text
    /// that only grows (or, for a prefix being counted, is read shorter): the same text as at the last count, where
    /// it overlaps.
    /// </summary>
    internal int Count(BpeRanks ranks, ReadOnlySpan<char> piece, int start)
    {
        int complete = char.IsHighSurrogate(piece[^1]) ? piece.Length - 1 : piece.Length;
        if (start != _start)
        {
            Forget();
            _start = start;
        }

        if (complete < _chars)
        {
            // The same text, read shorter: a whitespace run gave its last space to the next piece, or a prefix is counted.
            _byteLength = Encoding.UTF8.GetByteCount(piece[..complete]);
            _chars = complete;
            while (_tokens > 0 && _ends[_tokens - 1] > _byteLength)
            {
                _tokens--;
            }
        }
        else if (complete > _chars)
        {
            var added = piece[_chars..complete];
            Grow(ref _bytes, _byteLength + Encoding.UTF8.GetMaxByteCount(added.Length) + 3);
            _byteLength += Encoding.UTF8.GetBytes(added, _bytes.AsSpan(_byteLength));
            _chars = complete;
        }

        // A high surrogate at the end is U+FFFD for this count (as tiktoken sees it), not kept: its pair may follow.
        int total = _byteLength;
        if (complete < piece.Length)
        {
            Grow(ref _bytes, total + 3);
            "\uFFFD"u8.CopyTo(_bytes.AsSpan(total));
            total += 3;
        }

        var bytes = _bytes.AsSpan(0, total);
        if (total <= ranks.MaxTokenLength && ranks.Get(bytes) != int.MaxValue)
        {
            _tokens = 0; // tiktoken takes a piece that is a token whole, without merging
            return 1;
        }

        for (int back = InitialBackTokens; ; back *= 4)
        {
            // Merge again from the start of token `first`; the tokens before it stand if the merge starts with it.
            int first = Math.Max(0, _tokens - back);
            int from = first == 0 ? 0 : _ends[first - 1];
            var window = bytes[from..];
            int[] starts = ArrayPool<int>.Shared.Rent(window.Length + 1);
            try
            {
                int parts = BytePairEncoder.Merge(ranks, window, starts);
                MergedBytes += window.Length;
                if (first > 0 && from + starts[1] != _ends[first])
                {
                    WentBack++;
                    continue;
                }

                Grow(ref _ends, first + parts);
                int kept = first;
                for (int k = 1; k <= parts && from + starts[k] <= _byteLength; k++)
                {
                    _ends[kept++] = from + starts[k];
                }

                _tokens = kept;
                return first + parts;
            }
            finally
            {
                ArrayPool<int>.Shared.Return(starts);
            }
        }
    }

    private static void Grow<T>(ref T[] array, int length)
    {
        if (array.Length < length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
