using System.Text;
using ChatStack.Tokenization;

namespace ChatStack.Tests.Tokenization;

/// <summary>
/// Counting allocates nothing once a text's pieces are in the cache: not per call, not per checkpoint of a stream.
/// Measured on this thread's allocation counter, so other threads' work (BenchmarkDotNet's column counts every
/// thread) cannot hide or fake a per-call allocation.
/// </summary>
public sealed class CountingAllocationTests
{
    public static TheoryData<string> Encodings => new() { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase };

    // Every kind of piece the counter treats apart: cached words, numbers, punctuation, CJK, emoji, astral letters,
    // lone surrogates and U+FEFF (counted as U+FFFD bytes), and runs longer than the cache takes (pooled buffers).
    private static readonly string s_text = new StringBuilder()
        .Append("I couldn't say; they'll see 12345 things at https://example.com/a?b=c. ")
        .Append("if (x) {\n        return y;\n    }\n\n")
        .Append("中文分词测试，这是一个句子。日本語のテキストです。한국어 텍스트입니다. ")
        .Append("family: 👩‍👩‍👧‍👦! ok 👍🏽 🇺🇸 1️⃣ a 𝟙𝟚𝟛 𝔘'll 𐐔𐐯𐑅 ")
        .Append("x\uD835 y \uDC00 \uFEFFhello ")
        .Append(' ', 400).Append("word ")
        .Append(string.Concat(Enumerable.Repeat("漢字", 150))).Append(' ')
        .Append(string.Concat(Enumerable.Repeat("=", 300))).Append('\n')
        .ToString();

    // The same without runs past the cache's piece length: a stream that ends inside such a run keeps its encoding
    // (one object per counter, by design), so the per-checkpoint check leaves them out.
    private static readonly string s_ordinary = string.Concat(Enumerable.Repeat(
        "The answer, in short: 42 items cost $3.50 each (that's 147.00). 中文句子。Emoji 🚀👍🏽 and 𝔘𝔫𝔦 letters.\n\tdone = true;\n", 20));

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Counting_a_text_whose_pieces_are_cached_allocates_nothing(string encoding)
    {
        var counter = TokenCounter.Create(encoding);
        int expected = counter.CountTokens(s_text); // caches the pieces, rents the pooled buffers on this thread
        counter.CountTokens(s_text);

        long before = GC.GetAllocatedBytesForCurrentThread();
        int total = 0;
        for (int i = 0; i < 5; i++)
        {
            total += counter.CountTokens(s_text);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(5 * expected, total);
        Assert.Equal(0, allocated);
    }

    [Theory]
    [MemberData(nameof(Encodings))]
    public void Streaming_counters_allocate_nothing_per_delta_or_checkpoint(string encoding)
    {
        var counter = TokenCounter.Create(encoding);
        int expected = counter.CountTokens(s_ordinary);
        // Word fragments at the checkpoints below are pieces too: a first stream caches them.
        Stream(counter.CreateIncrementalCounter(), counter.CreateStreamingCounter());

        var incremental = counter.CreateIncrementalCounter();
        var streaming = counter.CreateStreamingCounter();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var (incrementalTotal, streamingTotal) = Stream(incremental, streaming);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(expected, incrementalTotal);
        Assert.Equal(expected, streamingTotal);
        Assert.Equal(0, allocated);
    }

    // Deltas of 1-7 characters (cutting surrogate pairs too), a read of both counts every 37 characters or so.
    private static (int Incremental, int Streaming) Stream(IncrementalTokenCounter incremental, StreamingTokenCounter streaming)
    {
        int start = 0, sinceRead = 0, incrementalTotal = 0, streamingTotal = 0;
        for (int k = 0; start < s_ordinary.Length; k++)
        {
            int length = Math.Min(1 + k % 7, s_ordinary.Length - start);
            var delta = s_ordinary.AsSpan(start, length);
            start += length;
            incremental.Appended(delta);
            streaming.Append(delta);
            if ((sinceRead += length) >= 37 || start == s_ordinary.Length)
            {
                incrementalTotal = incremental.CountTokens(s_ordinary.AsSpan(0, start));
                streamingTotal = streaming.Total;
                sinceRead = 0;
            }
        }
        return (incrementalTotal, streamingTotal);
    }
}
