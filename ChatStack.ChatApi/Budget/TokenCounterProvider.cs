using System.Collections.Concurrent;
using ChatStack.ChatApi.Agent;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>One counter per encoding (a vocabulary takes ~100 ms and ~20 MB to load, and its piece cache is shared).</summary>
internal sealed class TokenCounterProvider(ModelCatalog catalog) : ITokenCounterProvider
{
    private readonly ConcurrentDictionary<string, Lazy<ITokenCounter>> _byEncoding = new(StringComparer.OrdinalIgnoreCase);

    public ITokenCounter ForModel(string model) => ForEncoding(catalog.Get(model).ResolveEncoding());

    public ITokenCounter ForEncoding(string encoding) =>
        _byEncoding.GetOrAdd(encoding, e => new Lazy<ITokenCounter>(() => ExactTokenCounter.ForEncoding(e))).Value;

    /// <summary>The encoding a model name implies, as tiktoken maps them (o200k_base unless the name says otherwise).</summary>
    public static string EncodingForModelName(string model) => TokenCounterFactory.Default.EncodingForModel(model);
}
