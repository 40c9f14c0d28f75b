using System.Globalization;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ChatStack.Bench.Tokenizers;
using ChatStack.Tokenization;

// Usage: dotnet run -c Release --project bench/ChatStack.Bench.Tokenizers -- [--job short] [--segments] [BenchmarkDotNet options]
//        ... -- --stream-profile          streaming variants interleaved in one process
//        ... -- --stream-alone [rounds]   streaming variants each in a process of its own (default 5 rounds, ~3 min)
// Runs the .NET counters under BenchmarkDotNet (in-process unless --outOfProcess), then the npm peers on the same
// corpus file, and prints MB/s, allocations and ratios (also written to BenchmarkDotNet.Artifacts/token-counting.md).
if (args.Contains("--stream-profile"))
{
    StreamProfile.Run();
    Goals.SetExitCode();
    return;
}
if (Array.IndexOf(args, "--stream-alone-child") is var child and >= 0)
{
    StreamAlone.Child(args[child + 1], double.Parse(args[child + 2], CultureInfo.InvariantCulture));
    return;
}
if (Array.IndexOf(args, "--stream-alone") is var alone and >= 0)
{
    int rounds = alone + 1 < args.Length && int.TryParse(args[alone + 1], out int r) ? r : 5;
    StreamAlone.Run(rounds, seconds: 3);
    Goals.SetExitCode();
    return;
}

var bdnArgs = args.Where(a => a != "--outOfProcess").ToList();
if (!bdnArgs.Any(a => a.StartsWith("--filter", StringComparison.Ordinal)))
{
    bdnArgs.AddRange(["--filter", "*"]);
}
if (!args.Contains("--outOfProcess"))
{
    bdnArgs.Add("--inProcess"); // skips generating and building a separate benchmark project (2 cores)
}
bool quick = args.Contains("short");
bdnArgs.Remove("--segments");

string corpusPath = Corpus.FilePath;
int corpusBytes = Corpus.Utf8Bytes;
foreach (string encoding in new[] { TokenizerEncodings.O200kBase, TokenizerEncodings.Cl100kBase })
{
    var probe = TokenCounter.Create(encoding);
    probe.CountTokens(Corpus.Text);
    Console.WriteLine($"{encoding}: {probe.CachedPieces:N0} distinct cacheable pieces in the corpus (cache bound {TokenCounter.DefaultMaxCacheEntries:N0})");
}
Console.WriteLine($"Corpus: {corpusPath}, {Corpus.Text.Length:N0} UTF-16 code units, {corpusBytes:N0} UTF-8 bytes");

var summaries = BenchmarkSwitcher.FromTypes([typeof(CountingBenchmarks), typeof(StreamingBenchmarks)])
    .Run([.. bdnArgs], DefaultConfig.Instance.WithOptions(ConfigOptions.JoinSummary)).ToList();

var md = new StringBuilder();
var counting = summaries.SelectMany(s => s.Reports).Where(r => r.Success && r.BenchmarkCase.Descriptor.Type == typeof(CountingBenchmarks)).ToList();
// The peers' table compares them with ChatStack's counting benchmarks: without those (a --filter) it would say 0×.
if (counting.Count > 0)
{
    AppendCountingTable(md, counting);
}
else
{
    md.AppendLine("No counting benchmark ran (--filter), so the npm peers were not run.");
}

var streaming = summaries.SelectMany(s => s.Reports).Where(r => r.Success && r.BenchmarkCase.Descriptor.Type == typeof(StreamingBenchmarks)).ToList();
// Every streaming benchmark ran (a --filter may have left some out): the table compares them with each other.
if (streaming.Count == typeof(StreamingBenchmarks).GetMethods().Count(m => m.IsDefined(typeof(BenchmarkAttribute), inherit: false)))
{
    BenchmarkReport Report(string method) => streaming.First(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);
    double Median(string method) => Report(method).ResultStatistics!.Median;
    string Allocated(string method) => FormatBytes(Report(method).GcStats.GetBytesAllocatedPerOperation(Report(method).BenchmarkCase) ?? 0);
    double once = Median(nameof(StreamingBenchmarks.OneShot));
    double accumulate = Median(nameof(StreamingBenchmarks.AccumulateThenCount));
    var setup = new StreamingBenchmarks();
    setup.Setup();
    md.AppendLine();
    md.AppendLine(CultureInfo.InvariantCulture,
        $"Streaming (o200k): {setup.AnswerTokens:N0}-token answer, {setup.DeltaCount:N0} deltas of 1-8 chars, {setup.CheckpointCount:N0} checkpoints (~50 tokens apart).");
    md.AppendLine();
    md.AppendLine("| | median | allocated | ÷ count once | ÷ accumulate + count once |");
    md.AppendLine("|---|---:|---:|---:|---:|");
    double accumulateTokenDeltas = Median(nameof(StreamingBenchmarks.AccumulateTokenDeltasThenCount));
    foreach (var (method, label, accumulated) in new[]
    {
        (nameof(StreamingBenchmarks.OneShot), "count final text once", accumulate),
        (nameof(StreamingBenchmarks.Incremental), "**incremental** over the growing text", accumulate),
        (nameof(StreamingBenchmarks.IncrementalTokenDeltas), "**incremental**, deltas at token ends", accumulate),
        (nameof(StreamingBenchmarks.AccumulateThenCount), "accumulate deltas + count once", accumulate),
        (nameof(StreamingBenchmarks.AccumulateIncremental), "accumulate deltas + **incremental**", accumulate),
        (nameof(StreamingBenchmarks.Streaming), "streaming counter (own tail copy)", accumulate),
        (nameof(StreamingBenchmarks.ApiGated), "as the chat API: **counts when the estimate says a checkpoint is due**", accumulate),
        (nameof(StreamingBenchmarks.AccumulateTokenDeltasThenCount), "accumulate token deltas + count once", accumulateTokenDeltas),
        (nameof(StreamingBenchmarks.ApiGatedTokenDeltas), "as the chat API, token deltas", accumulateTokenDeltas),
    })
    {
        double m = Median(method);
        md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {m / 1e6:F2} ms | {Allocated(method)} | {m / once:F2}× | {m / accumulated:F2}× |");
    }
    md.AppendLine();
    md.AppendLine(Goals.Streaming("BenchmarkDotNet medians",
    [
        ("incremental", Median(nameof(StreamingBenchmarks.Incremental)) / once),
        ("deltas at token ends", Median(nameof(StreamingBenchmarks.IncrementalTokenDeltas)) / once),
        ("accumulate + incremental", Median(nameof(StreamingBenchmarks.AccumulateIncremental)) / accumulate),
        ("streaming counter ÷ accumulate + count once", Median(nameof(StreamingBenchmarks.Streaming)) / accumulate),
    ]));
    md.AppendLine();
    md.AppendLine("Those are BenchmarkDotNet medians of separate runs; on a shared machine load shifts between them, so the same ones are");
    md.AppendLine("also timed interleaved, keeping each one's minimum (load only ever adds time):");
    md.AppendLine();
    var interleaved = StreamProfile.Measure();
    md.AppendLine("- " + StreamProfile.Describe(interleaved));
    md.AppendLine("- " + StreamProfile.Verdict(interleaved));
    md.AppendLine("- " + StreamProfile.MeasureUnseen());
    md.AppendLine("- as the chat API, random deltas: " + setup.ApiGateStats(tokenDeltas: false));
    md.AppendLine("- as the chat API, token deltas: " + setup.ApiGateStats(tokenDeltas: true));
}

if (args.Contains("--segments"))
{
    md.AppendLine();
    md.Append(Segments.Run(quick ? 3 : 7));
}

Console.WriteLine();
Console.WriteLine(md.ToString());
Directory.CreateDirectory("BenchmarkDotNet.Artifacts");
File.WriteAllText(Path.Combine("BenchmarkDotNet.Artifacts", "token-counting.md"), md.ToString());
Goals.SetExitCode();

void AppendCountingTable(StringBuilder md, List<BenchmarkReport> counting)
{
    Console.WriteLine("Running npm peers on the same corpus...");
    string peersDir = Corpus.PeersDirectory;
    if (!Directory.Exists(Path.Combine(peersDir, "node_modules", "gpt-tokenizer")))
    {
        Corpus.Run("npm", "ci --no-audit --no-fund", peersDir);
    }
    using var peers = JsonDocument.Parse(Corpus.Run("node", $"peers.mjs \"{corpusPath}\" {(quick ? 3 : 7)}", peersDir));

    var rows = new List<(string Library, string Encoding, double MBps, int? Tokens, double? Allocated)>();
    foreach (var report in counting)
    {
        string encoding = (string)report.BenchmarkCase.Parameters["Encoding"];
        double seconds = report.ResultStatistics!.Median / 1e9;
        string library = report.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\'');
        rows.Add((library, encoding, corpusBytes / 1e6 / seconds, Count(library, encoding), report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)));
    }
    foreach (var r in peers.RootElement.GetProperty("results").EnumerateArray())
    {
        rows.Add((r.GetProperty("library").GetString()!, r.GetProperty("encoding").GetString()!, r.GetProperty("mbPerSec").GetDouble(), r.GetProperty("tokens").GetInt32(), null));
    }

    md.AppendLine(CultureInfo.InvariantCulture, $"Corpus: {corpusBytes / 1e6:F2} MB UTF-8 ({Corpus.Text.Length:N0} UTF-16 code units), median of {(quick ? "a short" : "a default")} BenchmarkDotNet job; npm peers: median of {(quick ? 3 : 7)} warm passes.");
    md.AppendLine();
    md.AppendLine("| library | encoding | MB/s | tokens | vs tiktoken | allocated per pass | ChatStack speed ÷ this |");
    md.AppendLine("|---|---|---:|---:|---|---:|---:|");
    foreach (var group in rows.GroupBy(r => r.Encoding))
    {
        double ours = group.FirstOrDefault(r => r.Library == "ChatStack").MBps;
        int? reference = group.FirstOrDefault(r => r.Library.StartsWith("tiktoken", StringComparison.Ordinal)).Tokens;
        foreach (var r in group.OrderByDescending(r => r.MBps))
        {
            string exact = reference is null || r.Tokens is null ? "?" : r.Tokens == reference ? "exact" : $"{r.Tokens - reference:+#;-#}";
            string alloc = r.Allocated is { } a ? FormatBytes(a) : "–";
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.Library} | {r.Encoding} | {r.MBps:F1} | {r.Tokens:N0} | {exact} | {alloc} | {ours / r.MBps:F2}× |");
        }
    }
    md.AppendLine();
    foreach (var group in rows.GroupBy(r => r.Encoding))
    {
        var chatStack = group.FirstOrDefault(r => r.Library == "ChatStack");
        var fastest = group.Where(r => !r.Library.StartsWith("ChatStack", StringComparison.Ordinal)).MaxBy(r => r.MBps);
        if (chatStack.Library is null || fastest.Library is null)
        {
            continue; // a --filter left ChatStack's row out: nothing to judge
        }
        int? reference = group.FirstOrDefault(r => r.Library.StartsWith("tiktoken", StringComparison.Ordinal)).Tokens;
        md.AppendLine("- " + Goals.Counting(group.Key, chatStack.MBps, fastest.Library, fastest.MBps, reference is not null && chatStack.Tokens == reference));
    }
}

static int? Count(string library, string encoding) => library switch
{
    "ChatStack" or "ChatStack, piece cache off" => TokenCounterFactory.Default.ForEncoding(encoding).CountTokens(Corpus.Text),
    "ML.Tokenizers 2.0.1" => Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding(encoding).CountTokens(Corpus.Text),
    "SharpToken 2.0.6" => SharpToken.GptEncoding.GetEncoding(encoding).CountTokens(Corpus.Text),
    _ => null,
};

static string FormatBytes(double bytes) => bytes switch
{
    < 1024 => $"{bytes:F0} B",
    < 1024 * 1024 => $"{bytes / 1024:F1} KiB",
    _ => $"{bytes / 1024 / 1024:F2} MiB",
};
