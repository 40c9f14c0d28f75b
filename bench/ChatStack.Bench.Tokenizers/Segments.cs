using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ChatStack.Tokenization;

namespace ChatStack.Bench.Tokenizers;

/// <summary>
/// Throughput per kind of text (--segments): each kind of the corpus generator alone, ~300k code units, counted by
/// every library. The .NET counters are timed with a Stopwatch (median of passes after a warm-up pass) as
/// peers.mjs times the npm ones, so the comparison per row is like for like.
/// </summary>
internal static class Segments
{
    private static readonly string[] s_kinds = ["prose", "code", "cjk", "emoji", "whitespace", "astral"];

    internal static string Run(int passes)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"Per kind of text (o200k_base, MB/s, median of {passes} warm passes; segment files from write-corpus.mjs):");
        md.AppendLine();
        md.AppendLine("| kind | UTF-8 bytes | ChatStack | ML.Tokenizers 2.0.1 | SharpToken 2.0.6 | gpt-tokenizer 4.0.0 | tiktoken 1.0.22 | ChatStack ÷ fastest peer |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        var chatStack = TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        var ml = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding(TokenizerEncodings.O200kBase);
        var sharp = SharpToken.GptEncoding.GetEncoding(TokenizerEncodings.O200kBase);
        foreach (string kind in s_kinds)
        {
            string path = Path.Combine(Path.GetTempPath(), $"chatstack-token-corpus-v1-{kind}.txt");
            if (!File.Exists(path))
            {
                Corpus.Run("node", $"write-corpus.mjs \"{path}\" 300000 {kind}", Path.Combine(Corpus.RepoRoot, "scripts", "tiktoken-reference"));
            }
            string text = File.ReadAllText(path, Encoding.UTF8);
            int bytes = Encoding.UTF8.GetByteCount(text);
            double ours = MBps(bytes, passes, () => chatStack.CountTokens(text));
            double mlRate = MBps(bytes, passes, () => ml.CountTokens(text));
            double sharpRate = MBps(bytes, passes, () => sharp.CountTokens(text));
            using var peers = JsonDocument.Parse(Corpus.Run("node", $"peers.mjs \"{path}\" {passes} o200k_base", Corpus.PeersDirectory));
            var rates = peers.RootElement.GetProperty("results").EnumerateArray()
                .ToDictionary(r => r.GetProperty("library").GetString()!, r => r.GetProperty("mbPerSec").GetDouble());
            double gpt = rates.Single(r => r.Key.StartsWith("gpt-tokenizer", StringComparison.Ordinal)).Value;
            double tik = rates.Single(r => r.Key.StartsWith("tiktoken", StringComparison.Ordinal)).Value;
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {kind} | {bytes:N0} | {ours:F1} | {mlRate:F1} | {sharpRate:F1} | {gpt:F1} | {tik:F1} | {ours / Math.Max(gpt, tik):F1}× |");
        }
        return md.ToString();
    }

    private static double MBps(int bytes, int passes, Func<int> count)
    {
        count();
        var times = new double[passes];
        for (int k = 0; k < passes; k++)
        {
            long t0 = Stopwatch.GetTimestamp();
            count();
            times[k] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(times);
        return bytes / 1e6 / times[passes / 2];
    }
}
