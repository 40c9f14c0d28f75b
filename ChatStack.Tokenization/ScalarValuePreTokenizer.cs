using Microsoft.ML.Tokenizers;

namespace ChatStack.Tokenization;

/// <summary>
/// A Microsoft.ML.Tokenizers <see cref="PreTokenizer"/> that splits exactly as tiktoken's o200k_base or cl100k_base
/// pattern does, on Unicode scalar values, for code that needs the <see cref="Tokenizer"/> abstraction
/// (see <see cref="TokenCounter.CreateMicrosoftMLTokenizer"/>). Counting should use <see cref="TokenCounter"/>:
/// it is faster and allocation-free.
/// </summary>
public sealed class ScalarValuePreTokenizer : PreTokenizer
{
    private readonly bool _o200k;

    public ScalarValuePreTokenizer(string encodingName)
    {
        if (encodingName != TokenizerEncodings.O200kBase && encodingName != TokenizerEncodings.Cl100kBase)
        {
            throw new ArgumentException($"Unsupported encoding '{encodingName}'.", nameof(encodingName));
        }
        _o200k = encodingName == TokenizerEncodings.O200kBase;
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < text.Length;)
        {
            int end = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            yield return (i, end - i);
            i = end;
        }
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        // An iterator cannot hold a span, so the pieces are collected first.
        var pieces = new List<(int Offset, int Length)>();
        for (int i = 0; i < text.Length;)
        {
            int end = _o200k ? PieceSplitter.NextO200k(text, i) : PieceSplitter.NextCl100k(text, i);
            pieces.Add((i, end - i));
            i = end;
        }
        return pieces;
    }
}
