using System.Globalization;

namespace ChatStack.Bench.Tokenizers;

/// <summary>
/// The goals of issue #11 as verdicts: each run prints whether its figures meet them, and exits with 1 when one does
/// not, so a regression reads as a failed run rather than a number someone must compare by hand.
/// </summary>
internal static class Goals
{
    /// <summary>The incremental and streaming counters cost at most this much over counting the final text once.</summary>
    internal const double MaxStreamingRatio = 1.10;

    private static bool s_failed;

    /// <summary>Sets the exit code when any verdict failed.</summary>
    internal static void SetExitCode() => Environment.ExitCode = s_failed ? 1 : 0;

    /// <summary>The counters' rows against <see cref="MaxStreamingRatio"/>, judged at the two decimals printed.</summary>
    internal static string Streaming(string method, IEnumerable<(string Label, double Ratio)> counterRows)
    {
        var highest = counterRows.MaxBy(r => r.Ratio);
        bool met = Math.Round(highest.Ratio, 2) <= MaxStreamingRatio;
        return Verdict(met, string.Create(CultureInfo.InvariantCulture,
            $"incremental counting ≤ {MaxStreamingRatio:F2}× counting once ({method}; the counters' rows): highest {highest.Ratio:F2}× ({highest.Label})"));
    }

    /// <summary>ChatStack at least as fast as the fastest other library, and exact, in one encoding.</summary>
    internal static string Counting(string encoding, double ours, string fastestPeer, double peerMBps, bool exact) =>
        Verdict(ours >= peerMBps && exact, string.Create(CultureInfo.InvariantCulture,
            $"{encoding}: exact against tiktoken ({(exact ? "yes" : "NO")}) and at least the fastest peer's throughput: {ours:F1} MB/s against {fastestPeer} {peerMBps:F1} ({ours / peerMBps:F2}×)"));

    private static string Verdict(bool met, string what)
    {
        s_failed |= !met;
        return $"goal {(met ? "met" : "NOT MET")}: {what}";
    }
}
