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
    public void Incremental_EqualsOneShot_OnEveryPrefix_ForRandomTextsAndDeltas(string encoding)
    {
        // The caller keeps the text; each call passes all of it so far, as the chat API does with its answer.
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        s_textAndCuts.Sample(sample =>
        {
            var (text, cuts) = sample;
            var count = counter.CreateIncrementalCounter();
            int pos = 0;
            foreach (int cut in cuts)
            {
                pos = Math.Min(text.Length, pos + cut);
                if (count.CountTokens(text.AsSpan(0, pos)) != counter.CountTokens(text.AsSpan(0, pos)))
                {
                    return false;
                }
            }
            return count.CountTokens(text) == counter.CountTokens(text) && count.CountTokens(text) == counter.CountTokens(text);
        }, iter: 2000);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void UpperBound_IsNeverBelowTheCount_WhateverWasAppendedSinceTheLastCount(string encoding)
    {
        // The chat API stops an answer at the delta that exhausts its budget by checking this bound between counts.
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        s_textAndCuts.SelectMany(sample => Gen.Bool.Array[sample.Cuts.Length].Select(reads => (sample.Text, sample.Cuts, reads))).Sample(sample =>
        {
            var (text, cuts, reads) = sample;
            var count = counter.CreateIncrementalCounter();
            int pos = 0;
            for (int k = 0; k < cuts.Length && pos < text.Length; k++)
            {
                pos = Math.Min(text.Length, pos + cuts[k]);
                if (count.UpperBound(pos) < counter.CountTokens(text.AsSpan(0, pos)))
                {
                    return false;
                }
                if (reads[k])
                {
                    count.CountTokens(text.AsSpan(0, pos));
                }
            }
            return true;
        }, iter: 2000);
    }

    [Theory]
    [InlineData(TokenizerEncodings.O200kBase, "  }\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000\u3000", "f")]
    [InlineData(TokenizerEncodings.Cl100kBase, "{  ", "1")]
    [InlineData(TokenizerEncodings.Cl100kBase, "{\u3000\u3000", "o")]
    public void UpperBound_Holds_WhereOneLetterAddsMoreTokensThanBytes(string encoding, string text, string letter)
    {
        // After a whitespace run, a letter takes the run's last space into its own piece and the run re-splits: the
        // count can grow by more than the letter's bytes, so "last count + bytes since" is no bound (cases from the corpus).
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        var count = counter.CreateIncrementalCounter();
        int before = count.CountTokens(text);
        int after = counter.CountTokens(text + letter);

        Assert.True(after > before + 1, $"{before} tokens, then {after} with one more byte");
        Assert.True(count.UpperBound(text.Length + 1) >= after);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void OnePassCount_SplitsAtStableBoundariesAndInsidePieces_AsCountingThePrefixAlone(string encoding)
    {
        // The incremental counter counts its settled pieces and its tail in one pass, split at a stable boundary; a
        // boundary inside a piece (which no stable boundary is) must still give the prefix's own count.
        var tokenCounter = TokenCounter.Create(encoding);
        ITokenCounterCore counter = tokenCounter;
        s_text.Sample(text =>
        {
            var pieceEnds = tokenCounter.SplitEnds(text).ToHashSet();
            for (int boundary = 0; boundary <= text.Length; boundary++)
            {
                // Other piece ends may split differently once the text after them is gone (a whitespace run).
                bool stable = boundary == 0 || boundary == text.Length || IncrementalTokenCounter.IsStableBoundary(text, boundary);
                if (!stable && pieceEnds.Contains(boundary))
                {
                    continue;
                }
                LongPieceCache? none = null;
                int total = counter.CountTokens(text, boundary, out int before, ref none, 0);
                Assert.Equal(tokenCounter.CountTokens(text), total);
                Assert.Equal(tokenCounter.CountTokens(text.AsSpan(0, boundary)), before);
            }
        }, iter: 200);
    }

    [Fact]
    public void Incremental_RejectsTextThatShrank_AndStartsOverAfterReset()
    {
        var counter = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        var count = counter.CreateIncrementalCounter();
        Assert.Equal(counter.CountTokens("Hello there, world"), count.CountTokens("Hello there, world"));
        var e = Assert.Throws<ArgumentException>(() => count.CountTokens("Hello"));
        Assert.Contains("only follows text that grows", e.Message);
        count.Reset();
        Assert.Equal(counter.CountTokens("Hello"), count.CountTokens("Hello"));
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
    public void StableBoundaries_SplitTheSame_WhateverFollows(string encoding)
    {
        // A position judged stable from the text so far must stay a piece boundary, with the same pieces before
        // it, for any continuation: that is what lets the counters count the text before it once and for all.
        var counter = (TokenCounter)TokenCounterFactory.Default.ForEncoding(encoding);
        int stable = 0;
        s_text.SelectMany(t => s_text.Select(u => (t, u))).Sample(sample =>
        {
            var (text, continuation) = sample;
            var whole = counter.SplitEnds(text + continuation);
            for (int p = 1; p < text.Length; p++)
            {
                if (!IncrementalTokenCounter.IsStableBoundary(text, p))
                {
                    continue;
                }
                stable++;
                if (!whole.Contains(p) || !counter.SplitEnds(text.AsSpan(0, p)).SequenceEqual(whole.Where(e => e <= p)))
                {
                    return false;
                }
            }
            return true;
        }, iter: 3000);
        Assert.True(stable > 10_000, $"only {stable} stable positions checked");
    }

    [Fact]
    public void StableBoundaries_CoverWhitespaceRunsNumbersAndAstralLetters()
    {
        // Places where a stream used to keep a long tail: after whitespace runs, line breaks, numbers, astral letters.
        (string Text, int Position)[] cases =
        [
            ("    return", 3),      // the last space of an indentation run, before a word
            ("}\n\nfoo", 3),      // after line breaks, before a word
            ("\n}", 1),            // after a line break, before punctuation
            ("123.", 3),           // a number, then punctuation
            ("v2", 1),             // letters, then a digit
            ("2x", 1),             // a digit, then letters
            ("(1", 1),             // punctuation, then a digit
            ("\U0001D518.", 2),   // an astral letter, then punctuation
        ];
        foreach (var (text, position) in cases)
        {
            Assert.True(IncrementalTokenCounter.IsStableBoundary(text, position), $"{position} in \"{text}\"");
        }
        // And not where a later scalar still decides: half a surrogate pair, a contraction, a slash after a break.
        Assert.False(IncrementalTokenCounter.IsStableBoundary("a.\uD835", 2));
        Assert.False(IncrementalTokenCounter.IsStableBoundary("word'", 4));
        Assert.False(IncrementalTokenCounter.IsStableBoundary(".\n/", 2));
        Assert.False(IncrementalTokenCounter.IsStableBoundary("a   ", 3));
        Assert.False(IncrementalTokenCounter.IsStableBoundary("a\n  ", 2)); // "\n  \n" would be one piece
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
