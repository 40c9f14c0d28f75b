using ChatStack.Tokenization;
using ChatStack.Tests.Support;
using CsCheck;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Tokenization;

/// <summary>
/// The gate the chat API counts its answer through: exact at every count, linear inside one long unbroken piece
/// (where each count re-reads the whole run so far), and a limit reached inside held text stops at a delta end.
/// </summary>
public sealed class CountGateTests(ITestOutputHelper output)
{
    private static readonly TokenCounter O200k = TokenCounter.Create(TokenizerEncodings.O200kBase);
    private const int Checkpoint = 50;

    public static TheoryData<string, int> Runs => new()
    {
        { "=", 20_000 }, // o200k: 64 '=' a token, one punctuation piece
        { " ", 20_000 }, // one whitespace piece
        { "ACGT", 20_000 }, // one letter piece
        { "字", 8_000 }, // one CJK letter piece, about a token a character
        { "-=", 20_000 },
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public void A_long_unbroken_run_is_counted_at_linear_cost_and_exactly(string unit, int length)
    {
        var text = "Here it is:\n" + Repeat(unit, length) + "\nThat was long.";
        var core = new RecountingTokenCounter(O200k);
        var (counts, shownAtCounts) = Stream(new CountGate(core.CreateIncrementalCounter()), text, deltaChars: 8, limit: int.MaxValue, out var kept, out var tokens);

        Assert.Equal(text.Length, kept);
        Assert.Equal(O200k.CountTokens(text), tokens);
        // Every count was exact for the text it covered, and only counted text was shown.
        Assert.All(shownAtCounts, c => Assert.Equal(O200k.CountTokens(text.AsSpan(0, c.Shown)), c.Tokens));
        double perChar = (double)core.Characters / text.Length;
        output.WriteLine($"{unit} × {length}: {counts.Count} counts, {perChar:F1} characters counted per character");
        // Linear: a batch is a quarter of the run, so all counts read about five times the run. A count at each
        // checkpoint read it ~length/50-tokens times (20,000 '=': ~90 counts), and at each delta near a limit ~2,500.
        Assert.InRange(perChar, 1, 8);
        Assert.InRange(counts.Count, 1, 60);
    }

    [Theory]
    [InlineData("=", 100)]
    [InlineData("=", 180)]
    [InlineData(" ", 60)]
    [InlineData("字", 2_500)]
    [InlineData("ACGT", 1_000)]
    public void A_limit_reached_inside_held_text_stops_at_the_first_delta_that_reaches_it(string unit, int limit)
    {
        var text = "Draw: " + Repeat(unit, 30_000);
        var core = new RecountingTokenCounter(O200k);
        Stream(new CountGate(core.CreateIncrementalCounter()), text, deltaChars: 8, limit, out var kept, out var tokens);

        // Reference: a count after every delta (these runs count more with every character).
        int expected = 8;
        while (O200k.CountTokens(text.AsSpan(0, Math.Min(expected, text.Length))) < limit)
        {
            expected += 8;
        }

        Assert.Equal(expected, kept);
        Assert.Equal(O200k.CountTokens(text.AsSpan(0, kept)), tokens);
        Assert.True(tokens >= limit);
        // About five reads of the run for the batches, one per bisection step in the last batch, and at most a count
        // at every delta over the first LongRun characters, before the run is known to be long. A count at every
        // delta once the bound met the limit read ~kept²/16 (6,400 '=': 2.6 million characters).
        output.WriteLine($"{unit}, limit {limit}: kept {kept} characters, {core.Characters} counted");
        double bound = kept * (6 + Math.Log2((double)kept / 8)) + 1_024.0 * 1_024 / 8; // CountGate.LongRun² / delta
        Assert.True(core.Characters < bound, $"{core.Characters} characters counted for {kept}, more than {bound:F0}");
    }

    [Fact]
    public void Random_texts_with_long_runs_count_exactly_and_stop_at_a_delta_end_that_reaches_the_limit()
    {
        string[] fragments = [" word", " Words", "'s", "\n", "  ", "中文", "😀", "12345", ".", new('=', 700), new(' ', 900), new('x', 1_500), "字字字字字字字字字字"];
        var gen = Gen.Int[0, fragments.Length - 1].Array[1, 16].Select(ix => string.Concat(ix.Select(i => fragments[i])))
            .SelectMany(t => Gen.Int[1, 40].Select(d => (Text: t, Delta: d)))
            .SelectMany(s => Gen.Int[1, 2_000].Select(l => (s.Text, s.Delta, Limit: l)));
        gen.Sample(sample =>
        {
            var (text, delta, limit) = sample;
            var (_, shownAtCounts) = Stream(new CountGate(O200k.CreateIncrementalCounter()), text, delta, limit, out var kept, out var tokens);
            bool exact = shownAtCounts.All(c => O200k.CountTokens(text.AsSpan(0, c.Shown)) == c.Tokens) && tokens == O200k.CountTokens(text.AsSpan(0, kept));
            if (tokens < limit)
            {
                return exact && kept == text.Length;
            }

            // Stopped at a delta end whose count reaches the limit, the delta before it under the limit.
            bool deltaEnd = kept % delta == 0 || kept == text.Length;
            int previousEnd = kept % delta == 0 ? kept - delta : kept - kept % delta;
            return exact && deltaEnd && O200k.CountTokens(text.AsSpan(0, previousEnd)) < limit;
        }, iter: 150);
    }

    /// <summary>
    /// Streams <paramref name="text"/> in deltas as the chat API does: show what the gate lets through, count when a
    /// checkpoint or the limit is due, stop at a count that reaches <paramref name="limit"/>; counts once more at the end.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_a_clock_held_text_waits_at_most_the_longest_hold(bool clock)
    {
        // A slow model: 40,000 '=' in deltas of 64 characters (one token each), 250 ms apart.
        var text = "Draw: " + Repeat("=", 40_000);
        var time = new FakeTimeProvider();
        var gate = clock ? new CountGate(O200k.CreateIncrementalCounter(), time, TimeSpan.FromSeconds(1)) : new CountGate(O200k.CreateIncrementalCounter());
        var appendedAt = new List<(int End, DateTimeOffset At)>();
        var start = time.GetUtcNow();
        var longestWait = TimeSpan.Zero;
        int counts = 0, shown = 0;
        for (int end = 0; end < text.Length;)
        {
            time.Advance(TimeSpan.FromMilliseconds(250));
            var delta = text.AsSpan(end, Math.Min(64, text.Length - end));
            end += delta.Length;
            appendedAt.Add((end, time.GetUtcNow()));
            gate.Appended(delta, end);
            if (gate.CountDue(end, Checkpoint, int.MaxValue))
            {
                var (length, tokens) = gate.Count(text.AsSpan(0, end), int.MaxValue);
                Assert.Equal(O200k.CountTokens(text.AsSpan(0, length)), tokens);
                counts++;
            }

            // Every delta now shown waited from when it came until now.
            int nowShown = gate.Shown(end);
            foreach (var (deltaEnd, at) in appendedAt.Where(a => a.End > shown && a.End <= nowShown))
            {
                longestWait = TimeSpan.FromTicks(Math.Max(longestWait.Ticks, (time.GetUtcNow() - at).Ticks));
            }
            shown = nowShown;
        }

        output.WriteLine($"clock {clock}: {counts} counts over {appendedAt.Count} deltas ({(appendedAt[^1].At - start).TotalSeconds:F0} s), longest wait {longestWait.TotalSeconds:F3} s");
        if (clock)
        {
            // Shown within the hold (counted at the first delta after it); about a count a second while the run lasts.
            Assert.InRange(longestWait, TimeSpan.Zero, TimeSpan.FromSeconds(1));
            Assert.InRange(counts, 100, 200);
        }
        else
        {
            // Batches of a quarter of the run: the last one waits for about 160 deltas, 40 s.
            Assert.True(longestWait > TimeSpan.FromSeconds(20), $"waited at most {longestWait}");
        }
    }

    private static (List<int> Counts, List<(int Shown, int Tokens)> ShownAtCounts) Stream(CountGate gate, string text, int deltaChars, int limit, out int kept, out int tokens)
    {
        var counts = new List<int>();
        var shownAtCounts = new List<(int, int)>();
        int next = Checkpoint, end = 0;
        (kept, tokens) = (0, 0);
        while (end < text.Length)
        {
            int start = end;
            end = Math.Min(text.Length, end + deltaChars);
            gate.Appended(text.AsSpan(start, end - start), end);
            Assert.True(gate.Shown(end) <= end);
            if (!gate.CountDue(end, next, limit))
            {
                continue;
            }

            (kept, tokens) = gate.Count(text.AsSpan(0, end), limit);
            Assert.Equal(kept, gate.Shown(kept));
            counts.Add(tokens);
            shownAtCounts.Add((kept, tokens));
            if (tokens >= next)
            {
                next = tokens + Checkpoint;
            }

            if (tokens >= limit)
            {
                return (counts, shownAtCounts);
            }
        }

        (kept, tokens) = gate.Count(text.AsSpan(0, end), limit);
        shownAtCounts.Add((kept, tokens));
        return (counts, shownAtCounts);
    }

    private static string Repeat(string unit, int length) => string.Concat(Enumerable.Repeat(unit, length / unit.Length));
}
