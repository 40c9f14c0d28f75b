using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>Counts tokens of one encoding, exactly as tiktoken does (ChatStack.Tokenization); a seam tests can wrap.</summary>
internal interface ITokenCounter
{
    /// <summary>The encoding, e.g. <c>o200k_base</c>.</summary>
    string Encoding { get; }

    int Count(ReadOnlySpan<char> text);

    /// <summary>An exact incremental counter for one streamed text.</summary>
    Tokenization.StreamingTokenCounter CreateStream();
}

/// <summary>Counters per model: the encoding configured for the model, or the one its name implies.</summary>
internal interface ITokenCounterProvider
{
    ITokenCounter ForModel(string model);
}

/// <summary><see cref="ITokenCounter"/> over ChatStack.Tokenization's shared, cached counter.</summary>
internal sealed class ExactTokenCounter(TokenCounter counter) : ITokenCounter
{
    public string Encoding => counter.EncodingName;

    public int Count(ReadOnlySpan<char> text) => counter.CountTokens(text);

    public Tokenization.StreamingTokenCounter CreateStream() => counter.CreateStreamingCounter();

    public static ExactTokenCounter ForEncoding(string encoding) => new(TokenCounter.Create(encoding));
}
