using System.Text;
using ChatStack.Tokenization;
using CsCheck;

namespace ChatStack.Tests.Tokenization;

public sealed class BytePairEncoderTests
{
    private static readonly string[] s_fragments =
        [" ", "    ", "\n", "\t", "the", "ing", "中", "文", "語", "😀", "𝟙", "é", "e\u0301", "a", "aa", "{", "}", "\u3000", "0", "123"];

    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void HeapMerge_EqualsTiktokensScanMerge(string encoding)
    {
        var ranks = ((TokenCounter)TokenCounterFactory.Default.ForEncoding(encoding)).Ranks;
        var utf8 = Gen.Int[0, s_fragments.Length - 1].Array[1, 150]
            .Select(ix => Encoding.UTF8.GetBytes(string.Concat(ix.Select(i => s_fragments[i]))));
        var random = Gen.Byte.Array[1, 400];
        Gen.OneOf(utf8, random).Sample(bytes =>
        {
            var a = new int[bytes.Length + 1];
            var b = new int[bytes.Length + 1];
            int na = BytePairEncoder.MergeScan(ranks, bytes, a);
            int nb = BytePairEncoder.MergeHeap(ranks, bytes, b);
            return na == nb && a.AsSpan(0, na + 1).SequenceEqual(b.AsSpan(0, nb + 1));
        }, iter: 1000);
    }
}
