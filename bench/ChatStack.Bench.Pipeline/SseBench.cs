using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
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
internal sealed record StreamRun(TimeSpan Total, TimeSpan FirstDelta, TimeSpan LastDelta, int CompletionTokens, List<string> Deltas)
{
    /// <summary>Tokens per second while text flows: first delta to last, the part that does not depend on storage.</summary>
    public double StreamingRate => CompletionTokens / Math.Max((LastDelta - FirstDelta).TotalSeconds, 1e-6);
}

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

    public static async Task RunAsync(Stack stack, int chats, int concurrency)
    {
        using var http = Client(stack.Endpoint(Stack.ChatApi));
        using var memoryHttp = Client(stack.Endpoint(Stack.ChatApiMemory));
        await SignInAsync(http);
        memoryHttp.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;

        // The deltas the bare endpoint replays: exactly what the full pipeline sent.
        var sample = await ChatAsync(http);
        await using var bare = await BareEndpoint.StartAsync(sample.Deltas, sample.CompletionTokens);
        using var bareHttp = Client(bare.Address);
        Console.WriteLine($"answer: {sample.CompletionTokens} completion tokens in {sample.Deltas.Count} deltas; {chats} chats per side, {concurrency} at a time");

        // Warm both sides (JIT, connection pools, Firestore channel).
        for (var i = 0; i < 3; i++)
        {
            await ChatAsync(http);
            await ChatAsync(memoryHttp);
            await ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare"));
        }

        var full = new List<StreamRun>();
        var memory = new List<StreamRun>();
        var plain = new List<StreamRun>();
        var fullTime = TimeSpan.Zero;
        var memoryTime = TimeSpan.Zero;
        var plainTime = TimeSpan.Zero;
        for (var round = 0; round < chats / concurrency; round++)
        {
            fullTime += await Batch(full, () => ChatAsync(http), concurrency);
            memoryTime += await Batch(memory, () => ChatAsync(memoryHttp), concurrency);
            plainTime += await Batch(plain, () => ReadAsync(bareHttp, new HttpRequestMessage(HttpMethod.Post, "/bare")), concurrency);
        }

        double Rate(List<StreamRun> runs, TimeSpan wall) => runs.Sum(r => r.CompletionTokens) / wall.TotalSeconds;
        double Streaming(List<StreamRun> runs) => runs.Select(r => r.StreamingRate).Order().ElementAt(runs.Count / 2);
        var bareStreaming = Streaming(plain);
        var bareTurns = Rate(plain, plainTime);
        Console.WriteLine();
        Console.WriteLine("| path | streaming tokens/s (median) | vs bare | turn tokens/s | vs bare | first delta p50 / p99 | turn p50 / p99 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        void Row(string name, List<StreamRun> runs, TimeSpan wall) =>
            Console.WriteLine($"| {name} | {Streaming(runs):N0} | {Streaming(runs) / bareStreaming:F2}× | {Rate(runs, wall):N0} | {Rate(runs, wall) / bareTurns:F2}× | {Ms(P(runs, r => r.FirstDelta, 50))} / {Ms(P(runs, r => r.FirstDelta, 99))} | {Ms(P(runs, r => r.Total, 50))} / {Ms(P(runs, r => r.Total, 99))} |");
        Row("bare SSE endpoint, same deltas", plain, plainTime);
        Row("/api/chat, everything on", full, fullTime);
        Row("/api/chat, Firestore and dual write off", memory, memoryTime);
        Console.WriteLine();
        Console.WriteLine($"SSE pipeline ratio, streaming (full ÷ bare): {Streaming(full) / bareStreaming:F2}× (goal ≥ 0.80×); whole turns: {Rate(full, fullTime) / bareTurns:F2}×");
        Console.WriteLine($"time to first token added by the stack: p50 {Ms(P(full, r => r.FirstDelta, 50) - P(plain, r => r.FirstDelta, 50))}, p99 {Ms(P(full, r => r.FirstDelta, 99) - P(plain, r => r.FirstDelta, 99))}");

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
    }

    private static string Ms(TimeSpan t) => $"{t.TotalMilliseconds:F1} ms";

    private static TimeSpan P(List<StreamRun> runs, Func<StreamRun, TimeSpan> pick, int percentile) =>
        Stats.Percentile(runs.Select(pick).Order().ToList(), percentile);

    private static async Task<TimeSpan> Batch(List<StreamRun> into, Func<Task<StreamRun>> run, int concurrency)
    {
        var stopwatch = Stopwatch.StartNew();
        var runs = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => run()));
        stopwatch.Stop();
        into.AddRange(runs);
        return stopwatch.Elapsed;
    }

    private static HttpClient Client(Uri address) => new(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };

    private static async Task SignInAsync(HttpClient http)
    {
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user_id = "bench-user" });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private static Task<StreamRun> ChatAsync(HttpClient http, string message = Prompt) =>
        ReadAsync(http, new HttpRequestMessage(HttpMethod.Post, "/api/chat")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { message, budget_max = 1_000_000 }), Encoding.UTF8, "application/json"),
        });

    /// <summary>Reads a whole SSE stream line by line, as a browser's fetch reader would.</summary>
    public static async Task<StreamRun> ReadAsync(HttpClient http, HttpRequestMessage request)
    {
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var stopwatch = Stopwatch.StartNew();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{request.RequestUri} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var deltas = new List<string>();
        TimeSpan? first = null;
        var last = TimeSpan.Zero;
        var completion = 0;
        string? eventName = null;
        while (await reader.ReadLineAsync() is { } line)
        {
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
                    deltas.Add(data.GetProperty("text").GetString()!);
                }
                else if (eventName == "done")
                {
                    completion = data.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
                }
                else if (eventName == "error")
                {
                    throw new InvalidOperationException("stream error: " + data);
                }
            }
        }

        return new StreamRun(stopwatch.Elapsed, first ?? stopwatch.Elapsed, last, completion, deltas);
    }

    /// <summary>
    /// The baseline: the simplest SSE endpoint a team would write, streaming the recorded deltas (one JSON event and
    /// one flush each). It runs in a process of its own, like the chat API, so neither side shares the client's.
    /// </summary>
    internal sealed class BareEndpoint(Process process, Uri address, string file) : IAsyncDisposable
    {
        public Uri Address => address;

        public static async Task<BareEndpoint> StartAsync(IReadOnlyList<string> deltas, int completionTokens)
        {
            var file = Path.GetTempFileName();
            await File.WriteAllTextAsync(file, JsonSerializer.Serialize(new { deltas, completion_tokens = completionTokens }));
            var start = new ProcessStartInfo("dotnet", [typeof(BareEndpoint).Assembly.Location, "bare-server", file]) { RedirectStandardOutput = true };
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
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            app.MapPost("/bare", async (HttpContext context) =>
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
            });
            await app.StartAsync();
            Console.WriteLine(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            await app.WaitForShutdownAsync();
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
