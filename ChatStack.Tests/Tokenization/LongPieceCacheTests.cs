using System.Text;
using ChatStack.Tokenization;
using CsCheck;

namespace ChatStack.Tests.Tokenization;

/// <summary>
/// The incremental counter keeps the encoding of a long piece at the end of its text and merges only what it gained:
/// exact at every delta, whatever the piece is made of and wherever the deltas cut it, and linear in what it merges.
/// </summary>
public sealed class LongPieceCacheTests(ITestOutputHelper output)
{
    // What long unbroken pieces are made of: punctuation, whitespace, one-case letters, case changes, CJK (tokens
    // that end inside a character), emoji and astral letters (surrogate pairs a delta can cut), marks; and a few
    // letters at random, where appending changes tokens further back.
    private static readonly string[] s_alphabets =
    [
        "=", "=-", "=-_*#~.", " ", " \t", " \n", "a", "ab", "abc", "ACGT", "aAbB", "xyzzy", "中文日本語", "😀👍🏽", "𝔘𐐔", "e\u0301", "ſK",
    ];

    private static readonly string[] s_edges = ["", "x", " x", "=x", "\n", "a", "1", "'s", " ", "中", "😀"];

    private static readonly Gen<string> s_text =
        Gen.Select(Gen.Int[0, s_alphabets.Length - 1], Gen.Int[200, 2500], Gen.Int[0, s_edges.Length - 1], Gen.Int[0, s_edges.Length - 1], Gen.Int)
            .Select((alphabet, length, before, after, seed) =>
            {
                var random = new Random(seed);
                var run = new StringBuilder(s_edges[before]);
                while (run.Length < length)
                {
                    // Whole scalar values of the alphabet, so the run is what it says; the deltas still cut pairs.
                    var letters = s_alphabets[alphabet];
                    int at = random.Next(letters.Length);
                    at -= at > 0 && char.IsLowSurrogate(letters[at]) ? 1 : 0;
                    run.Append(letters, at, char.IsHighSurrogate(letters[at]) ? 2 : 1);
                }
                return run.Append(s_edges[after]).ToString();
            });

    private static readonly Gen<(string Text, int[] Cuts)> s_textAndCuts = s_text.SelectMany(t => Gen.Int[1, 64].Array[1, 400].Select(c => (t, c)));

    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Incremental_and_streaming_counts_equal_one_shot_at_every_delta_of_long_pieces(string encoding)
    {
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        int wentBack = 0;
        s_textAndCuts.Sample(sample =>
        {
            var (text, cuts) = sample;
            var incremental = counter.CreateIncrementalCounter();
            var stream = counter.CreateStreamingCounter();
            int pos = 0;
            for (int k = 0; pos < text.Length; k++)
            {
                int length = Math.Min(k < cuts.Length ? cuts[k] : 64, text.Length - pos);
                stream.Append(text.AsSpan(pos, length));
                pos += length;
                int expected = counter.CountTokens(text.AsSpan(0, pos));
                if (incremental.CountTokens(text.AsSpan(0, pos)) != expected || stream.Total != expected)
                {
                    return false;
                }
                Interlocked.Add(ref wentBack, incremental.LongPieceWentBack > 0 && pos == text.Length ? incremental.LongPieceWentBack : 0);
            }
            return true;
        }, iter: 500);

        // Appending changed a token before the last two often enough for the cache to go back, and still be exact.
        output.WriteLine($"{encoding}: counts that went back: {wentBack}");
        Assert.True(wentBack > 0);
    }

    [Theory]
    [InlineData("=", 8)]
    [InlineData(" ", 8)]
    [InlineData("ACGT", 8)]
    [InlineData("中文日本語", 4)]
    [InlineData("😀👍", 5)]
    public void A_long_run_counted_as_it_grows_is_merged_about_once(string alphabet, int deltaChars)
    {
        var counter = TokenCounter.Create(TokenizerEncodings.O200kBase);
        var random = new Random(5);
        var text = new StringBuilder();
        while (text.Length < 100_000)
        {
            int at = random.Next(alphabet.Length) & ~(char.IsSurrogate(alphabet[0]) ? 1 : 0);
            text.Append(alphabet, at, char.IsHighSurrogate(alphabet[at]) ? 2 : 1);
        }
        var run = text.ToString();

        // A count every 64 deltas (~50 tokens of '=', fewer of the others): each would merge the whole run so far
        // without the cache, about a hundred times the run in all.
        var incremental = counter.CreateIncrementalCounter();
        int counts = 0;
        for (int end = deltaChars, k = 1; ; end = Math.Min(run.Length, end + deltaChars), k++)
        {
            if (k % 64 == 0 || end == run.Length)
            {
                int tokens = incremental.CountTokens(run.AsSpan(0, end));
                if (++counts % 16 == 0 || end == run.Length) // exact at every delta is the property test's; here, what it costs
                {
                    Assert.Equal(counter.CountTokens(run.AsSpan(0, end)), tokens);
                }
            }
            if (end == run.Length)
            {
                break;
            }
        }

        int bytes = Encoding.UTF8.GetByteCount(run);
        double merged = (double)incremental.LongPieceMergedBytes / bytes;
        output.WriteLine($"{alphabet}: {run.Length:N0} chars, {bytes:N0} bytes, {counts} counts, merged {incremental.LongPieceMergedBytes:N0} bytes ({merged:F2}× the run)");
        Assert.InRange(merged, 1.0, 2.0);
    }
}
