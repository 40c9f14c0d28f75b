// Figures for the running stack, printed, not asserted (docs/benchmarks.md keeps the results):
//   sse     tokens/s delivered by POST /api/chat with everything on vs a bare SSE endpoint streaming the same
//           deltas (goal ≥ 0.8×); CPU per turn of every process of the stack; where a turn's time goes; time to
//           first token and hot-path cost added by the stack, p50/p99. [--no-worker: leave the analytics worker out;
//           --warmup 40 --short-warmup 300: long and short turns per side before measuring; --downstream-nice 19:
//           the emulators and the worker yield the cores to the APIs and the reader, as if they ran elsewhere;
//           --downstream-core: the emulators, the worker and DCP on the last CPU, the APIs, the bare endpoint and
//           the reader on the others]
//   ingest  worker throughput from the Pub/Sub emulator into the BigQuery emulator vs the emulator's raw
//           pull-and-ack rate (goal ≥ 0.8×); publish-to-row latency at a steady rate (goal p99 ≤ 2 s);
//   startup `dotnet run --project ChatStack.AppHost` to all-healthy, cold then warm (needs the stack's ports free).
//   coldstart  a new instance of the published chat API (ReadyToRun, as in the images, and without): start to
//           /health and through its first chats. [--runs 5]
//   concurrency  (a stack of its own, paced like a real model) many chats held open at once: errors, the chat
//           API's memory per open stream, event gaps. [-- concurrency --streams 2000 --ramp-seconds 20 --pace-ms 37
//           --answer-sentences 60 --target chat-api|chat-api-memory --via-proxy --full-gc]
//   limits  short turns one at a time on the chat API with its per-user limits in Firestore (shared by every
//           instance, the default) and on a twin keeping them in its own memory: what the shared limits add to
//           time to first token and to a turn. [--turns 200]
// Usage: dotnet run -c Release --project bench/ChatStack.Bench.Pipeline [-- sse|ingest|all|startup|coldstart|concurrency|limits --chats 12 --concurrency 2 --answer-sentences 2000 --events 20000 --rate 500 --seconds 20]
using ChatStack.Bench.Pipeline;

if (args is ["bare-server", var deltasFile])
{
    await SseBench.BareEndpoint.ServeAsync(deltasFile);
    return;
}

if (args is ["raw-drain", var pubSubHost, var subscription, var count])
{
    await IngestBench.DrainAsync(pubSubHost, subscription, int.Parse(count, System.Globalization.CultureInfo.InvariantCulture));
    return;
}

var part = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
var chats = Arg("--chats", 12);
var concurrency = Arg("--concurrency", 2);
var events = Arg("--events", 20_000);
var rate = Arg("--rate", 500);
var seconds = Arg("--seconds", 20);
// ~25 tokens a sentence: the default makes a ~50k-token answer, so per-turn costs do not hide the streaming cost.
var sentences = Arg("--answer-sentences", 2000);

if (part == "coldstart")
{
    Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    await ColdStartBench.RunAsync(Repository(), Arg("--runs", 5));
    return;
}

if (part == "startup")
{
    Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    await StartupBench.RunAsync(Repository(), Arg("--runs", 3));
    return;
}

Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
if (part is "concurrency")
{
    // Paced like a real model, so streams stay open as long as real ones do.
    var pace = Arg("--pace-ms", 37);
    var answer = Arg("--answer-sentences", 60);
    await using var paced = await Stack.StartAsync(pace, answer);
    Console.WriteLine("stack healthy: emulators, provisioner, chat-api and chat-api-memory");
    await ConcurrencyBench.RunAsync(paced, new ConcurrencyBench.Options(Arg("--streams", 2000), Arg("--ramp-seconds", 20), pace, answer,
        args.SkipWhile(a => a != "--target").Skip(1).FirstOrDefault() ?? Stack.ChatApi, Direct: !args.Contains("--via-proxy"), FullGc: args.Contains("--full-gc")));
    Console.WriteLine($"load at the end: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    return;
}

if (part is "limits")
{
    await using var twins = await Stack.StartAsync(deltaDelayMs: 0, sentences, localLimitsApi: true);
    Console.WriteLine("stack healthy: emulators, provisioner, chat-api and chat-api-local-limits");
    await SseBench.RunLimitsAsync(twins, Arg("--turns", 200));
    Console.WriteLine($"load at the end: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    return;
}

await using var stack = await Stack.StartAsync(deltaDelayMs: 0, sentences);
Console.WriteLine("stack healthy: emulators, provisioner, chat-api and chat-api-memory");

if (part is "sse" or "all")
{
    Console.WriteLine();
    Console.WriteLine("== SSE pipeline");
    await SseBench.RunAsync(stack, chats, concurrency, worker: !args.Contains("--no-worker"), Arg("--warmup", 40), Arg("--short-warmup", 300),
        args.Contains("--downstream-nice") ? Arg("--downstream-nice", 19) : null, args.Contains("--downstream-core"));
}

if (part is "ingest" or "all")
{
    Console.WriteLine();
    Console.WriteLine("== Ingestion");
    await IngestBench.RunAsync(stack, events, rate, seconds);
}

Console.WriteLine($"load at the end: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");

// The repository root: where ChatStack.sln is, above the harness's output folder.
static string Repository()
{
    var directory = new DirectoryInfo(AppContext.BaseDirectory);
    while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ChatStack.sln")))
    {
        directory = directory.Parent;
    }

    return directory?.FullName ?? throw new InvalidOperationException("Run the harness from the repository (ChatStack.sln not found above it).");
}

int Arg(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
}
