using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChatStack.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChatStack.Bench.Pipeline;

/// <summary>One streamed answer as the client saw it.</summary>
internal sealed record StreamRun(TimeSpan Total, TimeSpan FirstDelta, TimeSpan LastDelta, int CompletionTokens, List<string> Deltas, Arrivals? Arrived = null)
{
    /// <summary>Tokens per second while text flows: first delta to last, the part that does not depend on storage.</summary>
    public double StreamingRate => CompletionTokens / Math.Max((LastDelta - FirstDelta).TotalSeconds, 1e-6);
}

/// <summary>When the bytes of the first delta, the last delta and <c>done</c> reached the client, from the request's start.</summary>
internal sealed record Arrivals(TimeSpan FirstDelta, TimeSpan LastDelta, TimeSpan Done);

/// <summary>
/// SSE delivery: <c>POST /api/chat</c> with everything on against a bare ASP.NET Core endpoint that streams the
/// same deltas (one JSON event and one flush each, no budget, no storage), both over loopback HTTP, interleaved so
/// drift in the machine's load hits both alike.
/// </summary>
internal static class SseBench
{
    // The offline model writes Chat:Offline:LongAnswerSentences sentences when asked for an essay.
    private const string Prompt = "Write a long essay about caching strategies";

    // An ordinary answer of ~8 sentences.
    private const string ShortPrompt = "Tell me about caching strategies";

    private const int HotPathTurns = 40;

    private const int PhaseTurns = 10;

    // A turn's downstream work (outbox relay, Pub/Sub, the worker's 200 ms batch window, its insert) has ended when
    // the stack's processes together spend under a tenth of a core over this long. Their background is a few ms/s.
    private static readonly TimeSpan QuietWindow = TimeSpan.FromMilliseconds(600);
    private static readonly double QuietMs = QuietWindow.TotalMilliseconds / 10;
    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(4);

    public static async Task RunAsync(Stack stack, int chats, int concurrency, bool worker, int warmup, int shortWarmup, int? downstreamNice = null, bool downstreamCore = false)
    {
        using var http = Client(stack.Endpoint(Stack.ChatApi));
        using var memoryHttp = Client(stack.Endpoint(Stack.ChatApiMemory));
        await SignInAsync(http);
        memoryHttp.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;

        // The deltas the bare endpoint replays: exactly what the full pipeline sent.
        var sample = await ChatAsync(http);
        await using var bare = await BareEndpoint.StartAsync(sample.Deltas, sample.CompletionTokens);
        using var bareHttp = Client(bare.Address);
        // The stack leaves the worker out (the ingestion figures start their own); here it runs, so every process a
        // turn reaches is on the cores.
        using var analytics = worker ? new WorkerProcess(new Dictionary<string, string>
        {
            ["GOOGLE_CLOUD_PROJECT"] = Stack.ProjectId,
            ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
            ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
            ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1000",
            ["Logging__LogLevel__Default"] = "Warning",
        }) : null;
        Console.WriteLine($"answer: {sample.CompletionTokens} completion tokens in {sample.Deltas.Count} deltas; {chats} chats per side, {concurrency} at a time, after {warmup} long and {shortWarmup} short warm-up turns; analytics worker {(worker ? "on" : "off")}");

        // Warm both sides (JIT, connection pools, Firestore channel). With dynamic PGO a method is compiled three
        // times: at tier 0, instrumented after 30 calls, optimised after 30 more, and the promotions wait while
        // other methods are still being compiled. So code that runs once a turn (authentication, the agent's set-up,
        // the finalize) needs well over 60 turns: after 40 long turns the chat API's JIT thread still took 46% of its
        // CPU during the measured turns. Short turns run the same per-turn code in a tenth of the time.
        for (var i = 0; i < warmup; i++)
        {
            await ChatAsync(http);
            await ChatAsync(memoryHttp);
            await ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare"));
        }

        for (var i = 0; i < shortWarmup; i++)
        {
            await ChatAsync(http, ShortPrompt);
            await ChatAsync(memoryHttp, ShortPrompt);
            await ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare"));
        }

        var cpu = CpuAccounting.Discover(stack.RunId);
        if (downstreamNice is { } nice)
        {
            // The Firestore, Pub/Sub and BigQuery emulators and the worker yield the cores to the chat APIs, the bare
            // endpoint and the reader: a measured stand-in for "downstream on other machines", where the estimate
            // below only subtracts their CPU. The API still waits for their answers (commits, publishes).
            Console.WriteLine($"downstream processes at nice {nice}: {cpu.Renice(CpuAccounting.Downstream, nice)} threads");
        }

        if (downstreamCore)
        {
            // A measured stand-in for "Google Cloud is another machine": the emulators, the worker and DCP get the
            // last CPU to themselves; the chat APIs, the bare endpoint and the reader share the others. Each side
            // then streams on the same cores, and only the everything-on API's commits and publishes cross over.
            var last = Environment.ProcessorCount - 1;
            var downstreamPinned = cpu.Pin([.. CpuAccounting.Downstream, CpuAccounting.Aspire], 1UL << last);
            var restPinned = cpu.Pin([CpuAccounting.ChatApi, CpuAccounting.ChatApiMemory, CpuAccounting.Bare, CpuAccounting.Bench], (1UL << last) - 1);
            Console.WriteLine($"downstream processes and DCP on CPU {last} ({downstreamPinned} threads); chat APIs, bare endpoint and reader on CPU 0–{last - 1} ({restPinned} threads)");
        }

        Console.WriteLine("processes: " + string.Join("; ", cpu.Pids.GroupBy(p => p.Value).Select(g => $"{g.Key} {string.Join('+', g.Select(p => p.Key).Order())}")));

        // Idle background (JVM housekeeping, the worker's pull loops, health checks), once the warm-up's work, the
        // worker's start and the JIT's background recompiles are over.
        var warm = await cpu.SettleAsync(QuietWindow, QuietMs, TimeSpan.FromSeconds(30));
        var idleStart = cpu.Take();
        await Task.Delay(IdleWindow);
        var idle = cpu.Take() - idleStart;
        var idleWatched = CpuAccounting.Roles.Except([CpuAccounting.Bench, CpuAccounting.Aspire]).Sum(r => idle.Ms[r]) / idle.Wall.TotalSeconds;
        Console.WriteLine($"idle measured {(warm ? "after the stack went quiet" : "after 30 s, the stack still busy")}: the stack's processes {idleWatched:F0} ms/s; a batch's work is over when they spend ≤ {QuietMs:F0} ms in {QuietWindow.TotalMilliseconds:F0} ms");

        string[] compiling = [Stack.ChatApi, Stack.ChatApiMemory, BareEndpoint.Name];
        var compiledBefore = compiling.Select(JitLog.Count).ToArray();
        var full = new Side();
        var memory = new Side();
        var plain = new Side();
        for (var round = 0; round < chats / concurrency; round++)
        {
            await full.RunAsync(cpu, () => ChatAsync(http), concurrency);
            await memory.RunAsync(cpu, () => ChatAsync(memoryHttp), concurrency);
            await plain.RunAsync(cpu, () => ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare")), concurrency);
        }

        // A warm process still compiles a few dozen methods here (timers, telemetry export); hundreds mean the
        // warm-up was too short and the JIT is in the figures.
        Console.WriteLine("methods compiled by the JIT during the measured turns: " + string.Join(", ", compiling.Select((name, k) => $"{name} {JitLog.Count(name) - compiledBefore[k]}")));
        var fullTime = full.Wall;
        var memoryTime = memory.Wall;
        var plainTime = plain.Wall;

        double Rate(List<StreamRun> runs, TimeSpan wall) => runs.Sum(r => r.CompletionTokens) / wall.TotalSeconds;
        double Streaming(List<StreamRun> runs) => runs.Select(r => r.StreamingRate).Order().ElementAt(runs.Count / 2);
        var bareStreaming = Streaming(plain.Runs);
        var bareTurns = Rate(plain.Runs, plainTime);
        Console.WriteLine();
        Console.WriteLine("| path | streaming tokens/s (median) | vs bare | turn tokens/s | vs bare | first delta p50 / p99 | turn p50 / p99 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        void Row(string name, List<StreamRun> runs, TimeSpan wall) =>
            Console.WriteLine($"| {name} | {Streaming(runs):N0} | {Streaming(runs) / bareStreaming:F2}× | {Rate(runs, wall):N0} | {Rate(runs, wall) / bareTurns:F2}× | {Ms(P(runs, r => r.FirstDelta, 50))} / {Ms(P(runs, r => r.FirstDelta, 99))} | {Ms(P(runs, r => r.Total, 50))} / {Ms(P(runs, r => r.Total, 99))} |");
        Row("bare SSE endpoint, same deltas", plain.Runs, plainTime);
        Row("/api/chat, everything on", full.Runs, fullTime);
        Row("/api/chat, Firestore and dual write off", memory.Runs, memoryTime);
        Console.WriteLine();
        Console.WriteLine($"SSE pipeline ratio, streaming (full ÷ bare): {Streaming(full.Runs) / bareStreaming:F2}× (goal ≥ 0.80×); whole turns: {Rate(full.Runs, fullTime) / bareTurns:F2}×");
        Console.WriteLine($"time to first token added by the stack: p50 {Ms(P(full.Runs, r => r.FirstDelta, 50) - P(plain.Runs, r => r.FirstDelta, 50))}, p99 {Ms(P(full.Runs, r => r.FirstDelta, 99) - P(plain.Runs, r => r.FirstDelta, 99))}");

        PrintCpu(idle, full, memory, plain, bareTurns);

        // Where a turn's time goes. The reader parses slower than either server writes, so the times it sees lag;
        // these turns note when the bytes arrived instead. Between the last delta and done is the part of the finalize
        // commits that the writer's backlog of deltas did not hide: the model finishes, and commits, before the last
        // delta is written.
        var phases = new (string Name, Func<Task<StreamRun>> Run, List<StreamRun> Runs)[]
        {
            ("bare", () => ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare"), arrivals: true), []),
            ("everything on", () => ChatAsync(http, arrivals: true), []),
            ("storage off", () => ChatAsync(memoryHttp, arrivals: true), []),
        };
        for (var i = 0; i < PhaseTurns; i++)
        {
            foreach (var phase in phases)
            {
                phase.Runs.Add(await phase.Run());
                await cpu.SettleAsync(QuietWindow, QuietMs, SettleLimit);
            }
        }

        Console.WriteLine();
        Console.WriteLine($"phases by arrival time, {PhaseTurns} turns each way, one at a time:");
        Console.WriteLine("| path | first delta p50 / max | first → last delta p50 / max | last delta → done p50 / max | whole turn p50 / max |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (name, _, runs) in phases)
        {
            string Cell(Func<Arrivals, TimeSpan> pick) => $"{Ms(P(runs, r => pick(r.Arrived!), 50))} / {Ms(runs.Max(r => pick(r.Arrived!)))}";
            Console.WriteLine($"| {name} | {Cell(a => a.FirstDelta)} | {Cell(a => a.LastDelta - a.FirstDelta)} | {Cell(a => a.Done - a.LastDelta)} | {Cell(a => a.Done)} |");
        }


        // The hot path's cost shows best on a short answer, where storage is most of the turn.
        var shortFull = new List<StreamRun>();
        var shortMemory = new List<StreamRun>();
        for (var i = 0; i < HotPathTurns; i++)
        {
            shortFull.Add(await ChatAsync(http, ShortPrompt));
            shortMemory.Add(await ChatAsync(memoryHttp, ShortPrompt));
        }

        Console.WriteLine();
        Console.WriteLine($"hot path, {HotPathTurns} short turns ({shortFull[0].CompletionTokens} tokens) each way, one at a time:");
        Console.WriteLine("| path | first delta p50 / p99 | turn p50 / p99 |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine($"| Firestore + outbox on | {Ms(P(shortFull, r => r.FirstDelta, 50))} / {Ms(P(shortFull, r => r.FirstDelta, 99))} | {Ms(P(shortFull, r => r.Total, 50))} / {Ms(P(shortFull, r => r.Total, 99))} |");
        Console.WriteLine($"| off (memory) | {Ms(P(shortMemory, r => r.FirstDelta, 50))} / {Ms(P(shortMemory, r => r.FirstDelta, 99))} | {Ms(P(shortMemory, r => r.Total, 50))} / {Ms(P(shortMemory, r => r.Total, 99))} |");
        Console.WriteLine($"hot-path write latency added to a turn: p50 {Ms(P(shortFull, r => r.Total, 50) - P(shortMemory, r => r.Total, 50))}, p99 {Ms(P(shortFull, r => r.Total, 99) - P(shortMemory, r => r.Total, 99))} (difference of the percentiles)");
        if (analytics is not null)
        {
            // The ingestion part wants chat-events-to-bq unread until it starts its own worker.
            await analytics.StopAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// Short turns one at a time, alternating between the chat API with its limits in Firestore and its twin with
    /// them in memory (each after 40 to warm up): the shared limits' read and conditional commit at admission, and
    /// the settlement beside the answer's commit, as time to first delta and time to `done`.
    /// </summary>
    public static async Task RunLimitsAsync(Stack stack, int turns)
    {
        using var shared = Client(stack.Endpoint(Stack.ChatApi));
        using var local = Client(stack.Endpoint(Stack.ChatApiLocalLimits));
        await SignInAsync(shared);
        await SignInAsync(local);
        for (var i = 0; i < 40; i++)
        {
            await ChatAsync(shared, ShortPrompt);
            await ChatAsync(local, ShortPrompt);
        }

        var (sharedRuns, localRuns) = (new List<StreamRun>(), new List<StreamRun>());
        for (var i = 0; i < turns; i++)
        {
            // Alternating which goes first, so neither always meets the other's leftover work.
            if (i % 2 == 0)
            {
                sharedRuns.Add(await ChatAsync(shared, ShortPrompt));
                localRuns.Add(await ChatAsync(local, ShortPrompt));
            }
            else
            {
                localRuns.Add(await ChatAsync(local, ShortPrompt));
                sharedRuns.Add(await ChatAsync(shared, ShortPrompt));
            }
        }

        string Row(string name, List<StreamRun> runs) =>
            $"| {name} | {Ms(P(runs, r => r.FirstDelta, 50))} / {Ms(P(runs, r => r.FirstDelta, 90))} / {Ms(P(runs, r => r.FirstDelta, 99))} | {Ms(P(runs, r => r.Total, 50))} / {Ms(P(runs, r => r.Total, 90))} / {Ms(P(runs, r => r.Total, 99))} |";
        Console.WriteLine();
        Console.WriteLine($"per-user limits, {turns} short turns ({sharedRuns[0].CompletionTokens} tokens) each way, one at a time, Firestore and dual write on for both:");
        Console.WriteLine("| limits | first delta p50 / p90 / p99 | turn p50 / p90 / p99 |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine(Row("shared (Firestore, the default)", sharedRuns));
        Console.WriteLine(Row("this instance's memory", localRuns));
        Console.WriteLine($"added by sharing them: first delta p50 {Ms(P(sharedRuns, r => r.FirstDelta, 50) - P(localRuns, r => r.FirstDelta, 50))}, " +
            $"turn p50 {Ms(P(sharedRuns, r => r.Total, 50) - P(localRuns, r => r.Total, 50))} (differences of the percentiles)");
    }

    private static string Ms(TimeSpan t) => $"{t.TotalMilliseconds:F1} ms";

    private static TimeSpan P(List<StreamRun> runs, Func<StreamRun, TimeSpan> pick, int percentile) =>
        Stats.Percentile(runs.Select(pick).Order().ToList(), percentile);

    /// <summary>
    /// CPU per turn by process, per side; the chat API against the bare endpoint; the downstream processes' share of
    /// the machine during the everything-on turns; and an estimate of the ratio without them on these cores.
    /// </summary>
    private static void PrintCpu(CpuAccounting.Sample idle, Side full, Side memory, Side plain, double bareTurns)
    {
        var sides = new[] { full, memory, plain };
        string PerTurn(Side side, Func<CpuAccounting.Sample, double> pick) => $"{pick(side.During) / side.Runs.Count:F1} / {pick(side.After) / side.Runs.Count:F1}";
        Console.WriteLine();
        Console.WriteLine($"CPU ms per turn, during the turn / after done until the stack was quiet (utime + stime in {CpuAccounting.MsPerTick:F0} ms ticks; idle = ms per s with no chat running):");
        Console.WriteLine("| process | idle ms/s | everything on | storage off | bare endpoint |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var role in CpuAccounting.Roles)
        {
            Console.WriteLine($"| {role} | {idle.Ms[role] / idle.Wall.TotalSeconds:F1} | {string.Join(" | ", sides.Select(s => PerTurn(s, c => c.Ms[role])))} |");
        }

        Console.WriteLine($"| rest of machine (/proc/stat busy − the above) | {idle.RestMs / idle.Wall.TotalSeconds:F1} | {string.Join(" | ", sides.Select(s => PerTurn(s, c => c.RestMs)))} |");
        Console.WriteLine($"| whole machine busy | {idle.MachineMs / idle.Wall.TotalSeconds:F1} | {string.Join(" | ", sides.Select(s => PerTurn(s, c => c.MachineMs)))} |");
        Console.WriteLine($"| wall ms per turn (batch wall ÷ turns) / settle wait | | {string.Join(" | ", sides.Select(s => PerTurn(s, c => c.Wall.TotalMilliseconds)))} |");
        Console.WriteLine($"settle: waited for a quiet {QuietWindow.TotalMilliseconds:F0} ms after each batch; gave up after {SettleLimit.TotalSeconds:F0} s in {string.Join(" / ", sides.Select(s => s.Unsettled))} of {full.Batches} batches (everything on / storage off / bare)");

        double Api(Side side, string role) => (side.During.Ms[role] + side.After.Ms[role]) / side.Runs.Count;
        var bareCpu = Api(plain, CpuAccounting.Bare);
        Console.WriteLine($"chat API CPU per turn ÷ bare endpoint CPU per turn (during + after): everything on {Api(full, CpuAccounting.ChatApi) / bareCpu:F2}×, storage off {Api(memory, CpuAccounting.ChatApiMemory) / bareCpu:F2}×");

        var cores = Environment.ProcessorCount;
        var downstream = CpuAccounting.Downstream.Sum(r => full.During.Ms[r]);
        var downstreamAfter = CpuAccounting.Downstream.Sum(r => full.After.Ms[r]);
        var wall = full.During.Wall.TotalMilliseconds;
        Console.WriteLine($"everything on, during the turns: downstream processes took {downstream / full.During.MachineMs:P0} of the machine's busy CPU and {downstream / (cores * wall):P0} of {cores} cores' capacity; the machine was {full.During.MachineMs / (cores * wall):P0} busy; downstream CPU after done (the spill, kept out of the wall time) was {downstreamAfter / Math.Max(downstream + downstreamAfter, 1e-9):P0} of theirs");

        // Estimate, not a measurement: if the cores were saturated, every downstream CPU-ms during a turn displaced
        // the chat API's or the reader's, so without them the turns would take that CPU ÷ cores less wall time.
        var estimatedWall = wall - downstream / cores;
        var estimatedRate = full.Runs.Sum(r => r.CompletionTokens) / (estimatedWall / 1000);
        Console.WriteLine($"estimate, downstream off these cores (turn wall − their in-turn CPU ÷ {cores}; assumes saturated cores, so an upper bound): turn tokens/s {estimatedRate:N0} = {estimatedRate / bareTurns:F2}× bare (measured {full.Runs.Sum(r => r.CompletionTokens) / (wall / 1000) / bareTurns:F2}×)");
    }

    /// <summary>One side's turns, their wall time, and the CPU charged to them.</summary>
    private sealed class Side
    {
        public List<StreamRun> Runs { get; } = [];

        public CpuAccounting.Sample During { get; private set; } = CpuAccounting.Sample.Zero;

        public CpuAccounting.Sample After { get; private set; } = CpuAccounting.Sample.Zero;

        public TimeSpan Wall => During.Wall;

        public int Batches { get; private set; }

        public int Unsettled { get; private set; }

        /// <summary>
        /// A batch of turns, then a wait until the stack goes quiet, so the downstream work a turn leaves behind is
        /// charged to it (as After) and does not slow the next side's turns.
        /// </summary>
        public async Task RunAsync(CpuAccounting cpu, Func<Task<StreamRun>> run, int concurrency)
        {
            var before = cpu.Take();
            var runs = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => run()));
            var done = cpu.Take();
            Unsettled += await cpu.SettleAsync(QuietWindow, QuietMs, SettleLimit) ? 0 : 1;
            var after = cpu.Take();
            Runs.AddRange(runs);
            During += done - before;
            After += after - done;
            Batches++;
        }
    }

    private static HttpClient Client(Uri address) => new(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };

    private static async Task SignInAsync(HttpClient http)
    {
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user_id = "bench-user" });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private static Task<StreamRun> ChatAsync(HttpClient http, string message = Prompt, bool arrivals = false) =>
        ReadAsync(http, new HttpRequestMessage(HttpMethod.Post, "/api/chat")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { message, budget_max = 1_000_000 }), Encoding.UTF8, "application/json"),
        }, arrivals);

    /// <summary>
    /// Reads a whole SSE stream line by line, as a browser's fetch reader would. With <paramref name="arrivals"/>, a
    /// pump drains the socket as bytes come and notes when each chunk arrived, so the parser's lag does not move them.
    /// </summary>
    public static async Task<StreamRun> ReadAsync(HttpClient http, HttpRequestMessage request, bool arrivals = false)
    {
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var stopwatch = Stopwatch.StartNew();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{request.RequestUri} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        var network = await response.Content.ReadAsStreamAsync();
        var chunks = new List<(long End, TimeSpan At)>();
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var pump = arrivals ? PumpAsync(network, pipe.Writer, chunks, stopwatch) : Task.CompletedTask;
        using var reader = new StreamReader(arrivals ? pipe.Reader.AsStream() : network);
        var deltas = new List<string>();
        TimeSpan? first = null;
        var last = TimeSpan.Zero;
        var completion = 0;
        string? eventName = null;
        // Bytes up to the end of the current line, and of the first delta, the last delta and done (lines end in \n).
        long offset = 0, firstEnd = 0, lastEnd = 0, doneEnd = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (arrivals)
            {
                offset += Encoding.UTF8.GetByteCount(line) + 1;
            }

            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                eventName = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var data = JsonDocument.Parse(line.AsMemory(6)).RootElement.GetProperty("data");
                if (eventName == "message_delta")
                {
                    first ??= stopwatch.Elapsed;
                    last = stopwatch.Elapsed;
                    firstEnd = firstEnd == 0 ? offset : firstEnd;
                    lastEnd = offset;
                    deltas.Add(data.GetProperty("text").GetString()!);
                }
                else if (eventName == "done")
                {
                    doneEnd = offset;
                    completion = data.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
                }
                else if (eventName == "error")
                {
                    throw new InvalidOperationException("stream error: " + data);
                }
            }
        }

        var total = stopwatch.Elapsed;
        await pump;
        TimeSpan ArrivedBy(long end) => chunks.First(c => c.End >= end).At;
        return new StreamRun(total, first ?? total, last, completion, deltas,
            arrivals ? new Arrivals(ArrivedBy(firstEnd), ArrivedBy(lastEnd), ArrivedBy(doneEnd)) : null);
    }

    private static async Task PumpAsync(Stream network, PipeWriter writer, List<(long End, TimeSpan At)> chunks, Stopwatch stopwatch)
    {
        long received = 0;
        while (await network.ReadAsync(writer.GetMemory(16 * 1024)) is var read and > 0)
        {
            writer.Advance(read);
            received += read;
            chunks.Add((received, stopwatch.Elapsed));
            await writer.FlushAsync();
        }

        await writer.CompleteAsync();
    }

    /// <summary>
    /// The baseline: the simplest SSE endpoint a team would write, streaming the recorded deltas (one JSON event and
    /// one flush each). It runs in a process of its own, like the chat API, so neither side shares the client's.
    /// </summary>
    internal sealed class BareEndpoint(Process process, Uri address, string file) : IAsyncDisposable
    {
        public const string Name = "bare";

        public Uri Address => address;

        public static async Task<BareEndpoint> StartAsync(IReadOnlyList<string> deltas, int completionTokens)
        {
            var file = Path.GetTempFileName();
            await File.WriteAllTextAsync(file, JsonSerializer.Serialize(new { deltas, completion_tokens = completionTokens }));
            var start = new ProcessStartInfo("dotnet", [typeof(BareEndpoint).Assembly.Location, "bare-server", file]) { RedirectStandardOutput = true };
            foreach (var (variable, value) in JitLog.Variables(Name))
            {
                start.Environment[variable] = value;
            }

            var process = Process.Start(start)!;
            var line = await process.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("the bare endpoint did not start");
            return new BareEndpoint(process, new Uri(line), file);
        }

        /// <summary>The child process: serves <c>POST /bare</c> and prints its address.</summary>
        public static async Task ServeAsync(string file)
        {
            var recorded = JsonDocument.Parse(await File.ReadAllTextAsync(file)).RootElement;
            var deltas = recorded.GetProperty("deltas").EnumerateArray().Select(d => d.GetString()!).ToList();
            var done = JsonSerializer.Serialize(new { type = "done", data = new { usage = new { completion_tokens = recorded.GetProperty("completion_tokens").GetInt32() } } });
            await using var server = await ChatStack.Tests.Support.LocalServer.StartAsync(app => app.MapPost("/bare", async (HttpContext context) =>
            {
                context.Response.ContentType = "text/event-stream; charset=utf-8";
                var id = 0;
                foreach (var delta in deltas)
                {
                    var json = JsonSerializer.Serialize(new { type = "message_delta", data = new { text = delta } });
                    await context.Response.WriteAsync($"id: {++id}\nevent: message_delta\ndata: {json}\n\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }

                await context.Response.WriteAsync($"id: {++id}\nevent: done\ndata: {done}\n\n", context.RequestAborted);
            }));
            Console.WriteLine(server.Address);
            await Task.Delay(Timeout.Infinite); // the harness kills this process
        }

        public async ValueTask DisposeAsync()
        {
            process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
            File.Delete(file);
        }
    }
}
