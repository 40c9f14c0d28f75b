using System.Collections.Concurrent;

namespace ChatStack.Tokenization;

/// <summary>Which tiktoken encoding a model name uses.</summary>
public sealed class TokenCounterOptions
{
    /// <summary>Encoding for model names that match no prefix.</summary>
    public string DefaultEncoding { get; set; } = TokenizerEncodings.O200kBase;

    /// <summary>Model-name prefix → encoding; the longest matching prefix wins (case-insensitive).</summary>
    public IDictionary<string, string> ModelPrefixes { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["gpt-4o"] = TokenizerEncodings.O200kBase,
        ["chatgpt-4o"] = TokenizerEncodings.O200kBase,
        ["gpt-4.1"] = TokenizerEncodings.O200kBase,
        ["gpt-4.5"] = TokenizerEncodings.O200kBase,
        ["gpt-5"] = TokenizerEncodings.O200kBase,
        ["gpt-oss"] = TokenizerEncodings.O200kBase,
        ["o1"] = TokenizerEncodings.O200kBase,
        ["o3"] = TokenizerEncodings.O200kBase,
        ["o4"] = TokenizerEncodings.O200kBase,
        ["gpt-4"] = TokenizerEncodings.Cl100kBase,
        ["gpt-3.5"] = TokenizerEncodings.Cl100kBase,
        ["gpt-35"] = TokenizerEncodings.Cl100kBase,
        ["text-embedding-3"] = TokenizerEncodings.Cl100kBase,
        ["text-embedding-ada-002"] = TokenizerEncodings.Cl100kBase,
    };
}

/// <summary>
/// Hands out the shared, thread-safe <see cref="TokenCounter"/> for a model or encoding. Each encoding's
/// vocabulary is loaded once per process, on first use.
/// </summary>
public sealed class TokenCounterFactory
{
    private static readonly ConcurrentDictionary<string, Lazy<TokenCounter>> s_counters = new(StringComparer.Ordinal);

    private readonly TokenCounterOptions _options;

    public TokenCounterFactory(TokenCounterOptions? options = null) => _options = options ?? new TokenCounterOptions();

    /// <summary>A factory with the default model mapping.</summary>
    public static TokenCounterFactory Default { get; } = new();

    public ITokenCounter ForModel(string model) => ForEncoding(EncodingForModel(model));

    public ITokenCounter ForEncoding(string encodingName)
        => encodingName is TokenizerEncodings.O200kBase or TokenizerEncodings.Cl100kBase
            ? Shared(encodingName)
            : throw new ArgumentException($"Unsupported encoding '{encodingName}'.", nameof(encodingName));

    private static TokenCounter Shared(string encodingName)
        => s_counters.GetOrAdd(encodingName, static name => new Lazy<TokenCounter>(() => TokenCounter.Create(name))).Value;

    /// <summary>The encoding for <paramref name="model"/>; a provider prefix such as <c>openai/</c> is ignored.</summary>
    public string EncodingForModel(string model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string name = model[(model.LastIndexOf('/') + 1)..].Trim();
        string? best = null;
        int bestLength = -1;
        foreach (var (prefix, encoding) in _options.ModelPrefixes)
        {
            if (prefix.Length > bestLength && name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                best = encoding;
                bestLength = prefix.Length;
            }
        }
        return best ?? _options.DefaultEncoding;
    }
}
