using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

namespace ChatStack.Tokenization;

/// <summary>Counts and encodes text exactly as OpenAI's tiktoken does for one encoding.</summary>
public interface ITokenCounter
{
    /// <summary>The tiktoken encoding name, e.g. <c>o200k_base</c>.</summary>
    string EncodingName { get; }

    /// <summary>Number of tokens of <paramref name="text"/> (special-token text is counted as ordinary text).</summary>
    int CountTokens(ReadOnlySpan<char> text);

    /// <summary>Token ids of <paramref name="text"/>, as tiktoken's <c>encode_ordinary</c>.</summary>
    IReadOnlyList<int> EncodeToIds(ReadOnlySpan<char> text);

    /// <summary>A new counter for one stream of deltas; not thread-safe, one per stream.</summary>
    StreamingTokenCounter CreateStreamingCounter();

    /// <summary>A new counter for one text that the caller keeps and extends; not thread-safe, one per text.</summary>
    IncrementalTokenCounter CreateIncrementalCounter();
}

/// <summary>
/// Exact tiktoken counter: hand-written split of Unicode scalar values (<see cref="PieceSplitter"/>), tiktoken's
/// byte-pair merge over the ranks of Microsoft.ML.Tokenizers' encoding data, and a shared piece cache so that
/// counting allocates nothing once the vocabulary of a text has been seen. Thread-safe; share one per encoding.
/// </summary>
/// <remarks>
/// Lone UTF-16 surrogates count as U+FFFD, which is what tiktoken sees when a JS string or any UTF-8 encoder
/// passes them on. Special tokens such as <c>&lt;|endoftext|&gt;</c> are not recognised: their text is ordinary text.
/// </remarks>
public sealed class TokenCounter : ITokenCounter, ITokenCounterCore
{
    // Pieces longer than this are not cached: long whitespace or CJK runs rarely repeat, and keys stay small.
    private const int MaxCachedPieceLength = 128;
    /// <summary>Default bound of the piece cache: ~100k distinct pieces, roughly 10-15 MB per encoding at most; a full cache is cleared.</summary>
    public const int DefaultMaxCacheEntries = 100_000;

    private readonly BpeRanks _ranks;
    private readonly bool _o200k;
    private readonly ConcurrentDictionary<string, CachedPiece> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CachedPiece>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int _maxCacheEntries;
    private int _cacheEntries;

    private TokenCounter(string encodingName, BpeRanks ranks, int maxCacheEntries)
    {
        _maxCacheEntries = maxCacheEntries;
        EncodingName = encodingName;
        _ranks = ranks;
        _o200k = encodingName == TokenizerEncodings.O200kBase;
        _lookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Loads an encoding (<c>o200k_base</c> or <c>cl100k_base</c>) from the Microsoft.ML.Tokenizers data packages.</summary>
    public static TokenCounter Create(string encodingName, int maxCacheEntries = DefaultMaxCacheEntries)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCacheEntries);
        if (encodingName != TokenizerEncodings.O200kBase && encodingName != TokenizerEncodings.Cl100kBase)
        {
            throw new ArgumentException($"Unsupported encoding '{encodingName}'.", nameof(encodingName));
        }
        return new TokenCounter(encodingName, new BpeRanks(EncodingData.LoadRanks(encodingName)), maxCacheEntries);
    }

    public string EncodingName { get; }

    /// <summary>
    /// A Microsoft.ML.Tokenizers <see cref="Microsoft.ML.Tokenizers.TiktokenTokenizer"/> over the same encoding data with the
    /// exact <see cref="ScalarValuePreTokenizer"/>, for APIs that take a <see cref="Microsoft.ML.Tokenizers.Tokenizer"/>.
    /// Special tokens are not recognised, as in <see cref="EncodeToIds"/>.
    /// </summary>
    public Microsoft.ML.Tokenizers.TiktokenTokenizer CreateMicrosoftMLTokenizer()
    {
        using Stream data = EncodingData.OpenTiktokenFile(EncodingName);
        return Microsoft.ML.Tokenizers.TiktokenTokenizer.Create(data, new ScalarValuePreTokenizer(EncodingName), normalizer: null);
    }

    internal BpeRanks Ranks => _ranks;

    /// <summary>Distinct pieces cached so far.</summary>
    public int CachedPieces => Volatile.Read(ref _cacheEntries);

    // Never inlined, like the incremental counters' loop below: with dynamic PGO the JIT inlined a counting loop into a
    // hot caller's own loop (a loop over deltas), where it ran 20-35% slower than on its own, so counting cost what
    // the caller's code happened to be. As methods of their own, both loops are compiled once, the same for every caller.
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int CountTokens(ReadOnlySpan<char> text)
    {
        int count = 0;
        int i = 0;
        while (i < text.Length)
        {
            int end = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            count += PieceTokenCount(text[i..end]);
            i = end;
        }
        return count;
    }

    int ITokenCounterCore.CountTokens(ReadOnlySpan<char> text, ref LongPieceCache? longPiece, int offset) =>
        ((ITokenCounterCore)this).CountTokens(text, boundary: -1, out _, ref longPiece, offset);

    // The incremental counters' loop: CountTokens's, with the boundary check (none when negative) and a long piece
    // merged through their cache. One loop for both measured 1.10-1.20x counting once for the incremental counter
    // against 1.07-1.08x for two (interleaved A/B, 2026-11-27), so it is written apart from CountTokens.
    [MethodImpl(MethodImplOptions.NoInlining)]
    int ITokenCounterCore.CountTokens(ReadOnlySpan<char> text, int boundary, out int tokensBefore, ref LongPieceCache? longPiece, int offset)
    {
        int count = 0;
        int i = 0;
        tokensBefore = -1;
        while (i < text.Length)
        {
            int end = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            count += end - i > MaxCachedPieceLength ? LongPieceCount(text, i, end, ref longPiece, offset) : PieceTokenCount(text[i..end]);
            i = end;
            if (i == boundary)
            {
                tokensBefore = count;
            }
        }
        // A boundary inside a piece would be a broken stable-boundary rule; count its prefix on its own then.
        if (tokensBefore < 0 && boundary >= 0)
        {
            tokensBefore = boundary == 0 ? 0 : CountTokens(text[..boundary]);
        }
        return count;
    }

    // The text's last piece is the one a stream is still extending: kept, so the next count merges only its growth.
    // A kept piece read again (no longer last, or read shorter) is counted from what was kept.
    private int LongPieceCount(ReadOnlySpan<char> text, int start, int end, ref LongPieceCache? longPiece, int offset)
    {
        if (end - start >= LongPieceCache.MinChars && (end == text.Length || offset + start == longPiece?.Start))
        {
            return (longPiece ??= new LongPieceCache()).Count(_ranks, text[start..end], offset + start);
        }
        return CountUncached(text[start..end]);
    }

    public IReadOnlyList<int> EncodeToIds(ReadOnlySpan<char> text)
    {
        var ids = new List<int>(text.Length / 3 + 1);
        int i = 0;
        while (i < text.Length)
        {
            int end = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            ids.AddRange(PieceTokens(text[i..end]));
            i = end;
        }
        return ids;
    }

    public StreamingTokenCounter CreateStreamingCounter() => new(this);

    public IncrementalTokenCounter CreateIncrementalCounter() => new(this);

    /// <summary>Splits <paramref name="text"/> into pieces (end offsets), for tests and diagnostics.</summary>
    internal List<int> SplitEnds(ReadOnlySpan<char> text)
    {
        var ends = new List<int>();
        for (int i = 0; i < text.Length;)
        {
            i = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            ends.Add(i);
        }
        return ends;
    }

    private int PieceTokenCount(ReadOnlySpan<char> piece)
    {
        if (piece.Length > MaxCachedPieceLength)
        {
            return CountUncached(piece);
        }
        if (_lookup.TryGetValue(piece, out CachedPiece cached))
        {
            return cached.Count;
        }
        return _maxCacheEntries > 0 ? AddToCache(piece).Length : CountUncached(piece);
    }

    private ReadOnlySpan<int> PieceTokens(ReadOnlySpan<char> piece)
    {
        if (piece.Length > MaxCachedPieceLength)
        {
            return EncodePiece(piece);
        }
        return _lookup.TryGetValue(piece, out CachedPiece cached) ? cached.Ids : AddToCache(piece);
    }

    private int[] AddToCache(ReadOnlySpan<char> piece)
    {
        int[] ids = EncodePiece(piece);
        if (_maxCacheEntries == 0)
        {
            return ids;
        }
        // A full cache starts over rather than freezing: streams also cache the word fragments at their tails
        // ("hel" before "lo" arrives; with deltas at token ends these recur), and a frozen cache full of them
        // would stop learning the real vocabulary. Learning it again costs one merge per distinct piece.
        if (Interlocked.Increment(ref _cacheEntries) > _maxCacheEntries)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cacheEntries, 1);
        }
        if (!_lookup.TryAdd(piece, new CachedPiece(ids.Length, ids)))
        {
            Interlocked.Decrement(ref _cacheEntries);
        }
        return ids;
    }

    // Long pieces (whitespace or CJK runs) rarely repeat: counted with pooled buffers and kept out of the cache.
    private int CountUncached(ReadOnlySpan<char> piece)
    {
        byte[] rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(piece.Length));
        int len = Encoding.UTF8.GetBytes(piece, rented);
        ReadOnlySpan<byte> utf8 = rented.AsSpan(0, len);
        int count = _ranks.Get(utf8) != int.MaxValue ? 1 : BytePairEncoder.Count(_ranks, utf8);
        ArrayPool<byte>.Shared.Return(rented);
        return count;
    }

    private int[] EncodePiece(ReadOnlySpan<char> piece)
    {
        // UTF8 replaces lone surrogates with EF BF BD (U+FFFD), like the JS binding of tiktoken.
        byte[] rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(piece.Length));
        try
        {
            int len = Encoding.UTF8.GetBytes(piece, rented);
            ReadOnlySpan<byte> utf8 = rented.AsSpan(0, len);
            int whole = _ranks.Get(utf8);
            if (whole != int.MaxValue)
            {
                return [whole];
            }
            var output = new List<int>();
            BytePairEncoder.Encode(_ranks, utf8, output);
            return output.ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}

/// <summary>A cached piece: its count is kept beside the ids so that counting reads no array.</summary>
internal readonly record struct CachedPiece(int Count, int[] Ids);
