namespace ChatStack.Tokenization;

/// <summary>Names of the supported tiktoken encodings.</summary>
public static class TokenizerEncodings
{
    public const string O200kBase = "o200k_base";
    public const string Cl100kBase = "cl100k_base";
}
