using BenchmarkDotNet.Attributes;
using ChatStack.Tokenization;
using Microsoft.ML.Tokenizers;

namespace ChatStack.Bench.Tokenizers;

/// <summary>One pass over the whole corpus per operation, counting tokens.</summary>
[MemoryDiagnoser]
public class CountingBenchmarks
{
    private string _text = "";
    private ITokenCounter _chatStack = null!;
    private ITokenCounter _chatStackNoCache = null!;
    private TiktokenTokenizer _ml = null!;
    private global::SharpToken.GptEncoding _sharp = null!;

    [Params(TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase)]
    public string Encoding { get; set; } = TokenizerEncodings.O200kBase;

    [GlobalSetup]
    public void Setup()
    {
        _text = Corpus.Text;
        _chatStack = TokenCounterFactory.Default.ForEncoding(Encoding);
        _chatStackNoCache = TokenCounter.Create(Encoding, maxCacheEntries: 0);
        _ml = TiktokenTokenizer.CreateForEncoding(Encoding);
        _sharp = global::SharpToken.GptEncoding.GetEncoding(Encoding);
    }

    [Benchmark(Baseline = true, Description = "ChatStack")]
    public int ChatStack() => _chatStack.CountTokens(_text);

    // Every piece split and merged afresh: the speed on text whose vocabulary the cache has not seen.
    [Benchmark(Description = "ChatStack, piece cache off")]
    public int ChatStackNoCache() => _chatStackNoCache.CountTokens(_text);

    [Benchmark(Description = "ML.Tokenizers 2.0.1")]
    public int MlTokenizers() => _ml.CountTokens(_text);

    [Benchmark(Description = "SharpToken 2.0.6")]
    public int SharpTokenCount() => _sharp.CountTokens(_text);
}
