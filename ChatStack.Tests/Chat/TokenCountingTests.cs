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

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public void Checkpoints_taken_when_the_estimate_says_one_is_due_are_exact_about_every_50_tokens_and_cost_few_counts(int seed)
    {
        // Script switches are the estimate's hard case: whitespace and code runs, then emoji, CJK and astral letters.
        var text = Sample("prose", 60) + Sample("whitespace", 20) + Sample("emoji", 30) + Sample("code", 30) + Sample("cjk", 40)
            + Sample("multilingual", 30) + Sample("astral", 30) + Sample("prose", 30);
        var deltas = Split(text, seed).ToList();

        // What the agent does (AgentRun): count exactly only once the estimate reaches the next checkpoint.
        var gated = new AnswerTokenCounter(O200k);
        var checkpoints = new List<int>();
        var sofar = new StringBuilder();
        int next = 50, counts = 0;
        foreach (var delta in deltas)
        {
            gated.Add(delta);
            sofar.Append(delta);
            if (!gated.CountDue(next, limit: int.MaxValue))
            {
                continue;
            }

            counts++;
            var count = gated.Count();
            Assert.Equal(O200k.CountTokens(sofar.ToString()), count); // a checkpoint reports the exact count
            if (count >= next)
            {
                checkpoints.Add(count);
                next = count + 50;
            }
        }

        Assert.Equal(O200k.CountTokens(text), gated.Count());
        var gaps = checkpoints.Zip(checkpoints.Skip(1), (a, b) => b - a).Prepend(checkpoints[0]).ToList();
        output.WriteLine($"{text.Length} chars, {gated.Count()} tokens, {deltas.Count} deltas: {counts} counts for {checkpoints.Count} checkpoints " +
            $"gaps {gaps.Min()}-{gaps.Max()}, median {gaps.Order().ElementAt(gaps.Count / 2)}");
        // Never early (at least 50 since the last); late by a few tokens, and at a switch into code or astral letters
        // by less than a checkpoint (78-85 here; 104-110 while astral deltas were estimated at one token per unit).
        Assert.All(gaps, gap => Assert.InRange(gap, 50, 90));
        Assert.InRange(gaps.Order().ElementAt(gaps.Count / 2), 50, 60);
        // Few tokenizer calls: two or three per checkpoint on this mix, where the byte bound took ten (measured ~9.6 on
        // the benchmark answer, against ~1.7 for the estimate).
        Assert.True(counts <= 3 * checkpoints.Count, $"{counts} counts for {checkpoints.Count} checkpoints");
    }

    [Theory]
    [InlineData(37)]
    [InlineData(173)]
    [InlineData(401)]
    [InlineData(1000)]
    public void A_budget_checked_against_the_upper_bound_stops_at_the_delta_that_reaches_it(int limit)
    {
        var text = Sample("prose", 40) + Sample("emoji", 10) + Sample("cjk", 20) + Sample("code", 20) + Sample("astral", 10);
        var deltas = Split(text, 5).ToList();

        // Reference: an exact count after every delta.
        var everyDelta = new AnswerTokenCounter(O200k);
        var expected = Enumerable.Range(0, deltas.Count).First(i => everyDelta.Append(deltas[i]) >= limit);

        // The agent: count only when the bound says the limit may have been reached.
        var gated = new AnswerTokenCounter(O200k);
        int counts = 0, stopped = -1;
        for (var i = 0; i < deltas.Count && stopped < 0; i++)
        {
            gated.Add(deltas[i]);
            if (gated.CountDue(checkpoint: int.MaxValue, limit))
            {
                counts++;
                stopped = gated.Count() >= limit ? i : -1;
            }
        }

        Assert.Equal(expected, stopped);
        Assert.True(counts < expected + 1, $"{counts} counts for {expected + 1} deltas");
        output.WriteLine($"limit {limit}: stopped at delta {stopped} after {counts} counts");
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
            "astral" => "𝔘'll 𝟙𝟚𝟛 𐐔𐑅 𠀀𠀁 𝒜𝒷𝒸 ",
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
