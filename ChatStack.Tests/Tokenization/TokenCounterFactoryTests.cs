using ChatStack.Tokenization;

namespace ChatStack.Tests.Tokenization;

public sealed class TokenCounterFactoryTests
{
    [Theory]
    [InlineData("gpt-4o", TokenizerEncodings.O200kBase)]
    [InlineData("gpt-4o-mini-2024-07-18", TokenizerEncodings.O200kBase)]
    [InlineData("gpt-4.1-nano", TokenizerEncodings.O200kBase)]
    [InlineData("gpt-5", TokenizerEncodings.O200kBase)]
    [InlineData("openai/gpt-5-mini", TokenizerEncodings.O200kBase)]
    [InlineData("o1-preview", TokenizerEncodings.O200kBase)]
    [InlineData("o3-mini", TokenizerEncodings.O200kBase)]
    [InlineData("o4-mini", TokenizerEncodings.O200kBase)]
    [InlineData("gpt-4", TokenizerEncodings.Cl100kBase)]
    [InlineData("GPT-4-turbo", TokenizerEncodings.Cl100kBase)]
    [InlineData("gpt-3.5-turbo", TokenizerEncodings.Cl100kBase)]
    [InlineData("some-future-model", TokenizerEncodings.O200kBase)]
    public void EncodingForModel_MapsKnownFamilies_AndDefaultsToO200k(string model, string expected)
        => Assert.Equal(expected, TokenCounterFactory.Default.EncodingForModel(model));

    [Fact]
    public void Options_OverrideMapping()
    {
        var options = new TokenCounterOptions { DefaultEncoding = TokenizerEncodings.Cl100kBase };
        options.ModelPrefixes["my-gpt4-proxy"] = TokenizerEncodings.Cl100kBase;
        options.ModelPrefixes["gpt-4"] = TokenizerEncodings.O200kBase;
        var factory = new TokenCounterFactory(options);
        Assert.Equal(TokenizerEncodings.Cl100kBase, factory.EncodingForModel("my-gpt4-proxy-v2"));
        Assert.Equal(TokenizerEncodings.O200kBase, factory.EncodingForModel("gpt-4-0613"));
        Assert.Equal(TokenizerEncodings.Cl100kBase, factory.EncodingForModel("unknown"));
        Assert.Equal(TokenizerEncodings.Cl100kBase, factory.ForModel("unknown").EncodingName);
    }

    [Fact]
    public void ForEncoding_SharesOneCounterPerEncoding()
    {
        var a = TokenCounterFactory.Default.ForModel("gpt-4o");
        var b = new TokenCounterFactory().ForEncoding(TokenizerEncodings.O200kBase);
        Assert.Same(a, b);
        Assert.Throws<ArgumentException>(() => TokenCounter.Create("p50k_base"));
    }

    [Fact]
    public void SharedCounter_IsExactUnderConcurrentUse()
    {
        var reference = TiktokenReference.Instance;
        var counter = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.Cl100kBase);
        var items = reference.Ids[TokenizerEncodings.Cl100kBase].ToArray();
        var wrong = 0;
        Parallel.For(0, items.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var (name, ids) = items[i % items.Length];
            if (counter.CountTokens(reference.Texts[name]) != ids.Length)
            {
                Interlocked.Increment(ref wrong);
            }
        });
        Assert.Equal(0, wrong);
    }
}
