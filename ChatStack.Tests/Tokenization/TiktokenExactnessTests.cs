using ChatStack.Tokenization;

namespace ChatStack.Tests.Tokenization;

public sealed class TiktokenExactnessTests
{
    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    // The cases the issue names; texts and expected ids come from scripts/tiktoken-reference/corpus.mjs via tiktoken.
    public static TheoryData<string, string> NamedCases()
    {
        string[] names =
        [
            "astral-digits", "astral-fraktur-contraction", "astral-fraktur-word", "astral-bold", "astral-deseret-case",
            "astral-gothic", "astral-adlam-digits", "astral-cjk-ext-b",
            "emoji-zwj-family", "emoji-skin-tone", "emoji-flags", "emoji-keycap", "emoji-sequence",
            "bom-leading", "bom-inner",
            "lone-high-surrogate", "lone-low-surrogate", "lone-surrogate-only", "reversed-surrogates", "high-at-end",
            "spaces-1000", "spaces-then-word", "newlines-100", "mixed-whitespace", "whitespace-unicode",
            "cjk-chinese", "cjk-japanese", "cjk-korean", "cjk-upper-mix", "long-cjk-run",
            "indented-code", "url-and-json", "slashes", "punctuation-newlines",
            "contractions", "apostrophe-run", "modifier-upper-run", "combining-marks", "titlecase", "digits",
            "special-token-text", "rtl", "indic", "thai", "greek-cyrillic", "long-word", "empty",
        ];
        var data = new TheoryData<string, string>();
        foreach (string encoding in new[] { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase })
        {
            foreach (string name in names)
            {
                data.Add(encoding, name);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(NamedCases))]
    public void NamedCase_MatchesTiktoken(string encoding, string name)
    {
        var reference = TiktokenReference.Instance;
        string key = "case:" + name;
        string text = reference.Texts[key];
        int[] expected = reference.Ids[encoding][key];
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);

        Assert.Equal(expected, counter.EncodeToIds(text));
        Assert.Equal(expected.Length, counter.CountTokens(text));
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void EveryReferenceText_MatchesTiktoken(string encoding)
        => AssertMatchesReference(encoding, TokenCounterFactory.Default.ForEncoding(encoding));

    [Theory]
    [MemberData(nameof(Encodings))]
    public void EveryReferenceText_MatchesTiktoken_WithPieceCacheOff(string encoding)
        => AssertMatchesReference(encoding, TokenCounter.Create(encoding, maxCacheEntries: 0));

    [Theory]
    [MemberData(nameof(Encodings))]
    public void EveryReferenceText_MatchesTiktoken_WithATinyCacheThatKeepsClearing(string encoding)
    {
        var counter = TokenCounter.Create(encoding, maxCacheEntries: 64);
        AssertMatchesReference(encoding, counter);
        Assert.InRange(counter.CachedPieces, 1, 64);
    }

    private static void AssertMatchesReference(string encoding, ITokenCounter counter)
    {
        var reference = TiktokenReference.Instance;
        var mismatches = new List<string>();
        int tokens = 0;
        foreach (var (name, expected) in reference.Ids[encoding])
        {
            string text = reference.Texts[name];
            var actual = counter.EncodeToIds(text);
            tokens += expected.Length;
            if (!actual.SequenceEqual(expected) || counter.CountTokens(text) != expected.Length)
            {
                mismatches.Add($"{name}: expected {expected.Length} tokens, got {actual.Count}");
            }
        }
        Assert.True(reference.Ids[encoding].Count > 5000 && tokens > 50_000, "reference corpus unexpectedly small");
        Assert.Empty(mismatches.Take(20));
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void EveryScalarValueOfPlanes0To3And14_InLetterDigitSpaceContexts_MatchesTiktoken(string encoding)
    {
        // Catches any split-class difference between .NET's Unicode tables and those of tiktoken's Rust regex.
        // Its own counter, so a million one-off pieces do not fill the shared piece cache.
        var counter = TokenCounter.Create(encoding);
        var mismatches = new List<string>();
        var blocks = TiktokenReference.UnicodeSweep[encoding];
        foreach (var (start, count, checksum) in blocks)
        {
            var ids = counter.EncodeToIds(TiktokenReference.SweepBlockText(start));
            uint h = 0;
            foreach (int id in ids)
            {
                h = unchecked(h * 31 + (uint)id);
            }
            if (ids.Count != count || h != checksum)
            {
                mismatches.Add($"U+{start:X5}..U+{start + 0xFFF:X5}: expected {count} tokens, got {ids.Count}");
            }
        }
        Assert.Equal(80, blocks.Length);
        Assert.Empty(mismatches);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void LoneSurrogates_CountAsReplacementCharacter_LikeTiktokensJsBinding(string encoding)
    {
        // tiktoken's JS binding UTF-8-encodes JS strings, which turns each lone surrogate into U+FFFD.
        var counter = TokenCounterFactory.Default.ForEncoding(encoding);
        var reference = TiktokenReference.Instance;
        foreach (string name in new[] { "case:lone-high-surrogate", "case:lone-low-surrogate", "case:reversed-surrogates", "case:high-at-end" })
        {
            string text = reference.Texts[name];
            Assert.Contains(text, c => char.IsSurrogate(c));
            string replaced = ReplaceLoneSurrogates(text);
            Assert.Equal(reference.Ids[encoding][name], counter.EncodeToIds(replaced));
            Assert.Equal(counter.EncodeToIds(replaced), counter.EncodeToIds(text));
        }
    }

    [Fact]
    public void AstralLettersAndDigits_DifferFromMicrosoftMLTokenizersSplit()
    {
        // Guards the reason this library exists: the counts tiktoken gives, not the UTF-16-half split.
        var reference = TiktokenReference.Instance;
        var cl100k = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding(TokenizerEncodings.Cl100kBase);
        string text = reference.Texts["case:astral-digits"];
        int expected = reference.Ids[TokenizerEncodings.Cl100kBase]["case:astral-digits"].Length;
        Assert.NotEqual(expected, cl100k.CountTokens(text));
        Assert.Equal(expected, TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.Cl100kBase).CountTokens(text));
    }

    private static string ReplaceLoneSurrogates(string s)
    {
        var chars = s.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(chars[i]))
            {
                chars[i] = '\uFFFD';
            }
        }
        return new string(chars);
    }
}

public sealed class MicrosoftMLTokenizerAdapterTests
{
    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void TiktokenTokenizerWithScalarValuePreTokenizer_MatchesTiktoken_OnValidUnicode(string encoding)
    {
        var reference = TiktokenReference.Instance;
        var tokenizer = ((TokenCounter)TokenCounterFactory.Default.ForEncoding(encoding)).CreateMicrosoftMLTokenizer();
        var mismatches = new List<string>();
        int checkedTexts = 0;
        foreach (var (name, expected) in reference.Ids[encoding])
        {
            string text = reference.Texts[name];
            // ML.Tokenizers' own UTF-8 step treats lone surrogates differently; TokenCounter is the exact path for them.
            if (System.Text.Unicode.Utf8.FromUtf16(text, new byte[text.Length * 3 + 1], out _, out _, replaceInvalidSequences: false)
                != System.Buffers.OperationStatus.Done)
            {
                continue;
            }
            checkedTexts++;
            if (!tokenizer.EncodeToIds(text).SequenceEqual(expected) || tokenizer.CountTokens(text) != expected.Length)
            {
                mismatches.Add(name);
            }
        }
        Assert.True(checkedTexts > 40, $"only {checkedTexts} texts without lone surrogates");
        Assert.Empty(mismatches);
    }
}
