using System.Collections.Concurrent;
using ChatStack.ChatApi.Agent;
using Microsoft.ML.Tokenizers;

namespace ChatStack.ChatApi.Budget;

/// <summary>Microsoft.ML.Tokenizers' tiktoken with the encoding's real vocabulary (the Data.* packages).</summary>
internal sealed class TiktokenTokenCounter(TiktokenTokenizer tokenizer, string encoding) : ITokenCounter
{
    public string Encoding { get; } = encoding;

    public int Count(ReadOnlySpan<char> text) => text.IsEmpty ? 0 : tokenizer.CountTokens(text);

    public IEnumerable<(int Offset, int Length)> Pieces(string text) =>
        tokenizer.PreTokenizer is { } pre ? pre.PreTokenize(text) : [(0, text.Length)];

    public static TiktokenTokenCounter ForEncoding(string encoding) =>
        new(TiktokenTokenizer.CreateForEncoding(encoding), encoding);
}

/// <summary>One tokenizer per encoding (loading a vocabulary takes ~100 ms and ~20 MB), shared by all requests.</summary>
internal sealed class TokenCounterProvider(ModelCatalog catalog) : ITokenCounterProvider
{
    private readonly ConcurrentDictionary<string, Lazy<ITokenCounter>> _byEncoding = new(StringComparer.OrdinalIgnoreCase);

    public ITokenCounter ForModel(string model) => ForEncoding(catalog.Get(model).ResolveEncoding());

    public ITokenCounter ForEncoding(string encoding) =>
        _byEncoding.GetOrAdd(encoding, e => new Lazy<ITokenCounter>(() => TiktokenTokenCounter.ForEncoding(e))).Value;

    /// <summary>The encoding a model name implies, as tiktoken maps them: o200k_base for the GPT-4o family and later, cl100k_base for GPT-4/3.5.</summary>
    public static string EncodingForModelName(string model)
    {
        var name = model.ToLowerInvariant();
        if (name.StartsWith("gpt-4o", StringComparison.Ordinal) || name.StartsWith("gpt-4.1", StringComparison.Ordinal)
            || name.StartsWith("gpt-5", StringComparison.Ordinal) || name.StartsWith("o1", StringComparison.Ordinal)
            || name.StartsWith("o3", StringComparison.Ordinal) || name.StartsWith("o4", StringComparison.Ordinal)
            || name.StartsWith("chatgpt-4o", StringComparison.Ordinal))
        {
            return "o200k_base";
        }

        return name.StartsWith("gpt-4", StringComparison.Ordinal) || name.StartsWith("gpt-3.5", StringComparison.Ordinal)
            || name.StartsWith("text-embedding", StringComparison.Ordinal)
            ? "cl100k_base"
            : "o200k_base";
    }
}
