using System.Diagnostics;
using System.Text;
using ChatStack.ChatApi.Budget;
using ChatStack.Tokenization;

namespace ChatStack.Tests.Chat;

/// <summary>The streaming counter gives the same count as counting the final text once, after every delta, at linear cost.</summary>
public class TokenCountingTests(ITestOutputHelper output)
{
    private static readonly ITokenCounter O200k = TokenCounterFactory.Default.ForEncoding("o200k_base");
    private static readonly ITokenCounter Cl100k = TokenCounterFactory.Default.ForEncoding("cl100k_base");

    public static TheoryData<string, string> Texts => new()
    {
        { "o200k_base", "prose" },
        { "o200k_base", "multilingual" },
        { "o200k_base", "emoji" },
        { "o200k_base", "code" },
        { "o200k_base", "cjk" },
        { "o200k_base", "whitespace" },
        { "cl100k_base", "prose" },
        { "cl100k_base", "multilingual" },
        { "cl100k_base", "emoji" },
        { "cl100k_base", "code" },
        { "cl100k_base", "cjk" },
        { "cl100k_base", "whitespace" },
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Streaming_count_equals_a_full_count_after_every_delta(string encoding, string kind)
    {
        var counter = encoding == "o200k_base" ? O200k : Cl100k;
        var text = Sample(kind, repeat: 6);
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var streaming = new AnswerTokenCounter(counter);
            var sofar = new StringBuilder();
            foreach (var delta in Split(text, seed))
            {
                sofar.Append(delta);
                var incremental = streaming.Append(delta);
                Assert.Equal(counter.CountTokens(sofar.ToString()), incremental);
            }

            Assert.Equal(counter.CountTokens(text), streaming.Count());
        }
    }

    [Fact]
    public void Contractions_and_whitespace_split_across_deltas_are_counted_as_one_text()
    {
        // The wrong shortcut (commit every piece but the last) gets exactly these wrong.
        string[] deltas = [" I couldn", "'", "t say", " it wasn", "'t so", "\n", "x \n  ", "\n", "   ", "done", " we'", "ll see"];
        foreach (var counter in new[] { O200k, Cl100k })
        {
            var streaming = new AnswerTokenCounter(counter);
            foreach (var delta in deltas)
            {
                streaming.Append(delta);
            }

            Assert.Equal(counter.CountTokens(string.Concat(deltas)), streaming.Count());
        }
    }

    [Fact]
    public void Streaming_count_is_linear_not_a_recount_per_checkpoint()
    {
        var text = Sample("prose", repeat: 200) + Sample("cjk", repeat: 100);
        var deltas = Split(text, 7).ToList();
        var exact = ChatStack.Tokenization.TokenCounter.Create("o200k_base").CreateStreamingCounter();
        var total = 0;
        var recounted = 0L;
        foreach (var delta in deltas)
        {
            exact.Append(delta);
            recounted += exact.TailLength; // what reading Total re-counts
            total = exact.Total;
        }

        Assert.Equal(O200k.CountTokens(text), total);
        var charsPerChar = (double)recounted / text.Length;
        output.WriteLine($"{text.Length} chars, {total} tokens, {deltas.Count} deltas: counted after every delta, {charsPerChar:0.0} characters re-counted per character of text");
        // A recount after every delta would re-count ~deltas/2 characters per character (thousands); linear stays small.
        Assert.True(charsPerChar < 60, $"re-counted {charsPerChar:0.0} chars per char");
    }

    [Fact]
    public void Counting_only_when_a_checkpoint_may_be_crossed_finds_the_same_checkpoints_with_few_tokenizer_calls()
    {
        var text = Sample("prose", 200) + Sample("multilingual", 50) + Sample("emoji", 50) + Sample("code", 50) + Sample("cjk", 100);
        var deltas = Split(text, 11).ToList();

        // Reference: exact count after every delta; a checkpoint at each first delta reaching 50, 100, ...
        var everyDelta = new AnswerTokenCounter(O200k);
        var expected = new List<(int Delta, int Tokens)>();
        var next = 50;
        for (var i = 0; i < deltas.Count; i++)
        {
            var count = everyDelta.Append(deltas[i]);
            if (count >= next)
            {
                expected.Add((i, count));
                next = (count / 50 + 1) * 50;
            }
        }

        // What the agent does: count only when the upper bound says a checkpoint may have been reached.
        var gated = new AnswerTokenCounter(O200k);
        var actual = new List<(int Delta, int Tokens)>();
        next = 50;
        var calls = 0;
        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < deltas.Count; i++)
        {
            gated.Add(deltas[i]);
            if (gated.UpperBound < next)
            {
                continue;
            }

            calls++;
            var count = gated.Count();
            if (count >= next)
            {
                actual.Add((i, count));
                next = (count / 50 + 1) * 50;
            }
        }

        var total = gated.Count();
        stopwatch.Stop();
        var once = Stopwatch.StartNew();
        var full = O200k.CountTokens(text);
        once.Stop();

        // The naive way: re-encode everything at each checkpoint.
        var naive = Stopwatch.StartNew();
        var sofar = new StringBuilder();
        foreach (var (delta, _) in expected)
        {
            sofar.Clear().Append(string.Concat(deltas.Take(delta + 1)));
            O200k.CountTokens(sofar.ToString());
        }

        naive.Stop();
        Assert.Equal(full, total);
        Assert.Equal(expected, actual);
        output.WriteLine($"{text.Length} chars, {full} tokens, {deltas.Count} deltas, {expected.Count} checkpoints: gated incremental " +
            $"{calls} counts in {stopwatch.Elapsed.TotalMilliseconds:0.0} ms; " +
            $"once {once.Elapsed.TotalMilliseconds:0.0} ms; re-encoding at each checkpoint {naive.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.True(calls < deltas.Count / 3, $"{calls} counts for {deltas.Count} deltas");
    }

    [Theory]
    [InlineData("gpt-4o", "o200k_base")]
    [InlineData("gpt-4o-mini", "o200k_base")]
    [InlineData("gpt-4.1", "o200k_base")]
    [InlineData("o3-mini", "o200k_base")]
    [InlineData("gpt-4", "cl100k_base")]
    [InlineData("gpt-3.5-turbo", "cl100k_base")]
    [InlineData("llama3", "o200k_base")]
    public void The_encoding_follows_the_model_name(string model, string encoding) =>
        Assert.Equal(encoding, TokenCounterProvider.EncodingForModelName(model));

    internal static string Sample(string kind, int repeat)
    {
        var unit = kind switch
        {
            "prose" => "The committee couldn't agree, so they'll meet again on Tuesday. It's not ideal — but we're close. ",
            "multilingual" => "Größe und Übermaß; café crème; Ελληνικά κείμενα; русский текст; עברית; العربية; हिन्दी; ",
            "emoji" => "Launch 🚀🚀 went well 👍🏽 — team 👩‍💻👨‍💻 celebrates 🎉🎉🎉! Flags 🇫🇷🇯🇵 ",
            "code" => "public static int Sum(int[] xs)\n{\n    var total = 0;\n    foreach (var x in xs) { total += x; }\n    return total; // done\n}\n{\"a\": [1, 2, 3], \"b\": null}\n",
            "cjk" => "東京は日本の首都です。人口は約千四百万人で、世界最大級の都市圏を形成しています。北京是中国的首都。",
            "whitespace" => "a  b   c\n\n\n    indented\t\ttabs   \n  \n x ",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        return string.Concat(Enumerable.Repeat(unit, repeat));
    }

    /// <summary>Deltas of 1–8 characters, sometimes splitting surrogate pairs and grapheme clusters, as a model streams.</summary>
    internal static IEnumerable<string> Split(string text, int seed)
    {
        var random = new Random(seed);
        for (var i = 0; i < text.Length;)
        {
            var length = Math.Min(text.Length - i, random.Next(1, 9));
            yield return text.Substring(i, length);
            i += length;
        }
    }
}
