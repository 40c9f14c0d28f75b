using ChatStack.Tokenization;
using CsCheck;

namespace ChatStack.Tests.Tokenization;

public sealed class StreamingTokenCounterTests
{
    // Fragments chosen to stress the split patterns at delta edges: contractions, whitespace runs, line breaks,
    // slashes, letter-case runs, marks, CJK, astral letters/digits, emoji, U+FEFF and halves of surrogate pairs.
    private static readonly string[] s_fragments =
    [
        " ", "  ", "\t", "\n", "\r\n", "\r", "\u00A0", "\u3000", "'", "'s", "'ll", "'LL", "'re", "'ſ", "n't",
        "a", "b", "word", "Word", "WORD", "couldn", "ABCDEFGHIJKLMNOPQRS", "x", "é", "e\u0301", "\u0301", "ʰ", "ǅ",
        "1", "12", "123456", "١٢", ".", ",", "!", "?", "/", "//", "{", "}", "(", ")", "\"", "-", "_", "#",
        "中", "文", "日本語", "。", "，", "、", "한국어", "𝟙", "𝟚", "𝔘", "𐐔", "𐑅", "𠀀", "😀", "👍🏽", "👩‍👩‍👧", "🇺🇸",
        "\uFEFF", "\uD835", "\uDD18", "\uD83D", "\uDE00",
    ];

    private static readonly Gen<string> s_text =
        Gen.Int[0, s_fragments.Length - 1].Array[0, 120].Select(ix => string.Concat(ix.Select(i => s_fragments[i])));

    private static readonly Gen<(string Text, int[] Cuts)> s_textAndCuts =
        s_text.SelectMany(t => Gen.Int[1, 12].Array[0, 200].Select(c => (t, c)));

    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Streaming_EqualsOneShot_AfterEveryDelta_ForRandomTextsAndDeltas(string encoding)
    {
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        s_textAndCuts.Sample(sample =>
        {
            var (text, cuts) = sample;
            var stream = counter.CreateStreamingCounter();
            int pos = 0;
            foreach (int cut in cuts.Append(int.MaxValue))
            {
                int len = Math.Min(cut, text.Length - pos);
                stream.Append(text.AsSpan(pos, len));
                pos += len;
                if (stream.Total != counter.CountTokens(text.AsSpan(0, pos)))
                {
                    return false;
                }
                if (pos == text.Length)
                {
                    break;
                }
            }
            return stream.Total == counter.CountTokens(text) && stream.Length == text.Length;
        }, iter: 2000);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Streaming_EqualsOneShot_WithLongRunsAndRareReads(string encoding)
    {
        // Long runs without a stable boundary and large deltas exercise the buffer growth and eager commits.
        string[] longFragments = [.. s_fragments, new string(' ', 5000), string.Concat(Enumerable.Repeat("漢字", 2500)),
            string.Concat(Enumerable.Repeat("word ", 1000)), string.Concat(Enumerable.Repeat("ABC", 2000)), new string('\n', 3000)];
        var gen = Gen.Int[0, longFragments.Length - 1].Array[1, 40].Select(ix => string.Concat(ix.Select(i => longFragments[i])))
            .SelectMany(t => Gen.Int[1, 3000].Array[1, 30].SelectMany(c => Gen.Bool.Array[c.Length].Select(r => (t, c, r))));
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        gen.Sample(sample =>
        {
            var (text, cuts, reads) = sample;
            var stream = counter.CreateStreamingCounter();
            int pos = 0;
            for (int k = 0; k < cuts.Length && pos < text.Length; k++)
            {
                int len = Math.Min(cuts[k], text.Length - pos);
                stream.Append(text.AsSpan(pos, len));
                pos += len;
                if (reads[k] && stream.Total != counter.CountTokens(text.AsSpan(0, pos)))
                {
                    return false;
                }
            }
            stream.Append(text.AsSpan(pos));
            return stream.Total == counter.CountTokens(text);
        }, iter: 80);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Streaming_EqualsTiktoken_AtCheckpoints_OverReferenceCorpus(string encoding)
    {
        // The generated corpus streamed in small random deltas, read every ~50 tokens like the chat API does.
        var reference = TiktokenReference.Instance;
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        var names = reference.Ids[encoding].Keys.Where(n => n.StartsWith("corpus-", StringComparison.Ordinal)).ToList();
        var random = new Random(11);
        var stream = counter.CreateStreamingCounter();
        int expectedSoFar = 0, checkpoints = 0;
        foreach (string name in names)
        {
            // Chunks were encoded separately by tiktoken, so each one is its own stream.
            stream.Reset();
            string text = reference.Texts[name];
            int pos = 0, lastCheckpoint = 0;
            while (pos < text.Length)
            {
                int len = Math.Min(random.Next(1, 9), text.Length - pos);
                stream.Append(text.AsSpan(pos, len));
                pos += len;
                if (stream.Total - lastCheckpoint >= 50)
                {
                    Assert.Equal(counter.CountTokens(text.AsSpan(0, pos)), stream.Total);
                    lastCheckpoint = stream.Total;
                    checkpoints++;
                }
            }
            Assert.Equal(reference.Ids[encoding][name].Length, stream.Total);
            expectedSoFar += stream.Total;
        }
        Assert.True(checkpoints > 500, $"only {checkpoints} checkpoints");
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void StableBoundaries_AreAlwaysPieceBoundaries(string encoding)
    {
        var counter = (TokenCounter)TokenCounterFactory.Default.ForEncoding(encoding);
        s_text.Sample(text =>
        {
            var ends = new HashSet<int>(counter.SplitEnds(text));
            for (int p = 1; p < text.Length; p++)
            {
                if (StreamingTokenCounter.IsStableBoundary(text, p) && !ends.Contains(p))
                {
                    return false;
                }
            }
            return true;
        }, iter: 2000);
    }

    [Fact]
    public void ContractionAcrossDeltas_IsNotCommittedEarly()
    {
        // " couldn" + "'" + "t" is one o200k piece " couldn't"; committing " couldn" at the first delta would overcount.
        var counter = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        var stream = counter.CreateStreamingCounter();
        foreach (string delta in new[] { "We", " couldn", "'", "t", " go", "\n", "  ", "\n", "x" })
        {
            stream.Append(delta);
        }
        Assert.Equal(counter.CountTokens("We couldn't go\n  \nx"), stream.Total);
    }
}
