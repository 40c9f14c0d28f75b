using System.Diagnostics;
using ChatStack.Tokenization;

namespace ChatStack.Bench.Tokenizers;

/// <summary>Stopwatch breakdown of the streaming cost (--stream-profile), to see where time goes without BenchmarkDotNet.</summary>
internal static class StreamProfile
{
    internal static void Run()
    {
        var b = new StreamingBenchmarks();
        b.Setup();
        var counter = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        Console.WriteLine($"answer tokens {b.AnswerTokens}, deltas {b.DeltaCount}, checkpoints {b.CheckpointCount}");
        Console.WriteLine($"tail chars re-counted over all checkpoints: {b.TailStats()}");
        for (int k = 0; k < 5; k++)
        {
            Console.WriteLine($"time in Append / in Total (incl. stopwatch): {b.SplitTimes()}");
        }
        for (int round = 0; round < 3; round++)
        {
            Console.WriteLine($"one-shot {Time(() => b.OneShot()):F3} ms, incremental {Time(() => b.Incremental()):F3} ms, " +
                $"appends only {Time(() => b.AppendOnly()):F3} ms, copy only {Time(() => b.CopyOnly()):F3} ms");
        }
        GC.KeepAlive(counter);
    }

    private static double Time(Func<int> action)
    {
        action();
        var times = new List<double>();
        for (int k = 0; k < 41; k++)
        {
            long t0 = Stopwatch.GetTimestamp();
            action();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        return times[0]; // minimum: the machine is shared, other load only adds time
    }
}
