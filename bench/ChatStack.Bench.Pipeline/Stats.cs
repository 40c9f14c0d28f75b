namespace ChatStack.Bench.Pipeline;

internal static class Stats
{
    /// <summary>Nearest-rank percentile of values already sorted ascending; the default value when there are none.</summary>
    public static T Percentile<T>(IReadOnlyList<T> sorted, int percentile) =>
        sorted.Count == 0 ? default! : sorted[Math.Clamp((int)Math.Ceiling(percentile / 100.0 * sorted.Count) - 1, 0, sorted.Count - 1)];
}
