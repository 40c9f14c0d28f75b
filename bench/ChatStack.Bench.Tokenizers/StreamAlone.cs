using System.Diagnostics;
using System.Globalization;

namespace ChatStack.Bench.Tokenizers;

/// <summary>
/// Streaming cost with each variant alone in a process of its own, as a caller would run it: its code compiled
/// (and, with dynamic PGO, profiled) for it alone, and its data alone in the caches. Interleaving every variant in one
/// process (<see cref="StreamProfile"/>) shares one compiled, profiled copy of the counting code among them, and the
/// two methods have disagreed by 20-30% on the same build; neither is the true figure, so both are printed.
/// Rounds run every variant once each, in a rotating order; a ratio is taken within a round (minutes apart, load
/// moves), and its median over the rounds is printed.
/// </summary>
internal static class StreamAlone
{
    private static readonly (string Name, string Label, Func<StreamingBenchmarks, Func<int>> Variant)[] Variants =
    [
        ("once", "count final text once", b => b.OneShot),
        ("incremental", "incremental over the growing text", b => b.Incremental),
        ("incremental-token-deltas", "incremental, deltas at token ends", b => b.IncrementalTokenDeltas),
        ("accumulate", "accumulate deltas + count once", b => b.AccumulateThenCount),
        ("accumulate-incremental", "accumulate deltas + incremental", b => b.AccumulateIncremental),
        ("streaming", "streaming counter (own tail copy)", b => b.Streaming),
        ("api", "as the chat API (count when the estimate says a checkpoint is due)", b => b.ApiGated),
    ];

    // Ratio → (numerator, denominator): what each counter costs against what a caller would otherwise do.
    // Goal rows are the counters' own costs; the others are shown beside them (the copy of each delta that a caller
    // counting once also makes, and the chat API's per-delta gate on top of the counter).
    private static readonly (string Label, string Of, string Against, bool Goal)[] Ratios =
    [
        ("incremental ÷ count once", "incremental", "once", true),
        ("incremental, token deltas ÷ count once", "incremental-token-deltas", "once", true),
        ("accumulate + incremental ÷ accumulate + count once", "accumulate-incremental", "accumulate", true),
        ("streaming counter ÷ accumulate + count once", "streaming", "accumulate", true),
        ("streaming counter ÷ count once", "streaming", "once", false),
        ("chat API's loop ÷ accumulate + count once", "api", "accumulate", false),
    ];

    private static readonly TimeSpan Warm = TimeSpan.FromSeconds(1.5);

    /// <summary>The child: one variant, warmed, then timed for <paramref name="seconds"/>; prints microseconds per call.</summary>
    internal static void Child(string name, double seconds)
    {
        var b = new StreamingBenchmarks();
        b.Setup();
        var variant = Variants.Single(v => v.Name == name).Variant(b);
        // Warm by time, not by calls: dynamic PGO compiles the loop three times, the last after a delay.
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Warm)
        {
            variant();
        }
        GC.Collect();
        long calls = 0;
        clock.Restart();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            variant();
            calls++;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"us/op {clock.Elapsed.TotalMilliseconds * 1000 / calls:F1}"));
    }

    internal static void Run(int rounds, double seconds)
    {
        Console.WriteLine($"each variant alone in its own process, {rounds} rounds, {seconds:F0} s timed after {Warm.TotalSeconds} s warm, " +
            $"dynamic PGO {(Environment.GetEnvironmentVariable("DOTNET_TieredPGO") == "0" ? "off" : "on")}:");
        var times = Variants.ToDictionary(v => v.Name, _ => new List<double>());
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < Variants.Length; k++)
            {
                string name = Variants[(k + round) % Variants.Length].Name;
                times[name].Add(RunChild(name, seconds));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| variant | median | min | max |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, label, _) in Variants)
        {
            var t = times[name];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {label} | {Median(t) / 1000:F2} ms | {t.Min() / 1000:F2} ms | {t.Max() / 1000:F2} ms |"));
        }
        Console.WriteLine();
        Console.WriteLine("| ratio, within a round | median | range |");
        Console.WriteLine("|---|---:|---:|");
        var goalRows = new List<(string, double)>();
        foreach (var (label, of, against, goal) in Ratios)
        {
            var r = times[of].Zip(times[against], (a, b) => a / b).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {label} | **{Median(r):F2}×** | {r.Min():F2}–{r.Max():F2}× |"));
            if (goal)
            {
                goalRows.Add((label, Median(r)));
            }
        }
        Console.WriteLine();
        Console.WriteLine(Goals.Streaming("alone, median of the rounds", goalRows));
    }

    private static double RunChild(string name, double seconds)
    {
        // The same entry point, through the host that runs this one (dotnet, or the app host).
        string self = typeof(StreamAlone).Assembly.Location;
        string host = Environment.ProcessPath!;
        bool viaDotnet = Path.GetFileNameWithoutExtension(host) == "dotnet";
        var start = new ProcessStartInfo(host) { RedirectStandardOutput = true, UseShellExecute = false };
        if (viaDotnet)
        {
            start.ArgumentList.Add(self);
        }
        foreach (string arg in new[] { "--stream-alone-child", name, seconds.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(arg);
        }
        using var child = Process.Start(start)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        string? line = output.Split('\n').LastOrDefault(l => l.StartsWith("us/op ", StringComparison.Ordinal));
        if (child.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"The '{name}' child exited with {child.ExitCode}: {output}");
        }
        return double.Parse(line["us/op ".Length..], CultureInfo.InvariantCulture);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
