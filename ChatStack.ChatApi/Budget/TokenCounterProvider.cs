using ChatStack.ChatApi.Agent;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>Counters per model: the encoding configured for the model, or the one its name implies.</summary>
internal interface ITokenCounterProvider
{
    ITokenCounter ForModel(string model);
}

/// <summary>
/// ChatStack.Tokenization's shared counter of the model's encoding: one per encoding for the process (a vocabulary
/// takes ~100 ms and ~20 MB to load, and its piece cache is shared).
/// </summary>
internal sealed class TokenCounterProvider(ModelCatalog catalog) : ITokenCounterProvider
{
    public ITokenCounter ForModel(string model) => TokenCounterFactory.Default.ForEncoding(catalog.Get(model).ResolveEncoding());

    /// <summary>The encoding a model name implies, as tiktoken maps them (o200k_base unless the name says otherwise).</summary>
    public static string EncodingForModelName(string model) => TokenCounterFactory.Default.EncodingForModel(model);
}
