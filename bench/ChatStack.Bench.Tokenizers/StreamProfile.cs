using System.Diagnostics;

namespace ChatStack.Bench.Tokenizers;

/// <summary>
/// Streaming cost measured by interleaving: each round times one-shot, accumulate+count and incremental back to
/// back and the minimum per variant is kept. On a shared 2-core machine, load from other processes only adds time,
/// so the minimum of interleaved rounds is a steadier ratio than medians of runs taken minutes apart.
/// </summary>
internal static class StreamProfile
{
    internal static (double OneShotMs, double AccumulateMs, double IncrementalMs, int Rounds) Measure(int rounds = 41)
    {
        var b = new StreamingBenchmarks();
        b.Setup();
        double once = double.MaxValue, accumulate = double.MaxValue, incremental = double.MaxValue;
        for (int k = 0; k < 5; k++)
        {
            b.OneShot();
            b.AccumulateThenCount();
            b.Incremental();
        }
        for (int k = 0; k < rounds; k++)
        {
            once = Math.Min(once, Time(b.OneShot));
            accumulate = Math.Min(accumulate, Time(b.AccumulateThenCount));
            incremental = Math.Min(incremental, Time(b.Incremental));
        }
        return (once, accumulate, incremental, rounds);
    }

    internal static void Run()
    {
        var b = new StreamingBenchmarks();
        b.Setup();
        Console.WriteLine($"answer tokens {b.AnswerTokens}, deltas {b.DeltaCount}, checkpoints {b.CheckpointCount}, tail chars re-counted {b.TailStats()}");
        var (once, accumulate, incremental, rounds) = Measure();
        Console.WriteLine($"min of {rounds} interleaved rounds: one-shot {once:F3} ms, accumulate+count {accumulate:F3} ms, " +
            $"incremental {incremental:F3} ms, ratio {incremental / once:F2}x");
    }

    private static double Time(Func<int> action)
    {
        long t0 = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
