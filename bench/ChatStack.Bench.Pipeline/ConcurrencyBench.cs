using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ChatStack.Bench.Pipeline;

/// <summary>What one concurrent chat saw: its outcome, its time to first delta and every gap between two events.</summary>
internal sealed class ConcurrentChat
{
    public string? Error { get; set; }

    public TimeSpan? FirstDelta { get; set; }

    public int Events { get; set; }

    public List<float> GapsMs { get; } = new(1024);

    /// <summary>The two events around this stream's longest gap.</summary>
    public string WorstGapAt { get; set; } = "";
}

/// <summary>
/// Many chats held open at once against one chat API process paced like a real model: errors, the API's memory per
/// open stream (working set and GC heap, baseline vs all streams open) and the gaps between events as clients saw them.
/// </summary>
internal static class ConcurrencyBench
{
    private const string Prompt = "Write a long essay about caching strategies";

    public sealed record Options(int Streams, int RampSeconds, int PaceMs, int Sentences, string Target, bool Direct, bool FullGc);

    public static async Task RunAsync(Stack stack, Options options)
    {
        var api = ApiProcess.Find(stack.RunId, options.Target);
        var address = options.Direct ? api.Address : stack.Endpoint(options.Target);
        Console.WriteLine($"target: {options.Target} (pid {api.Pid}) at {address} {(options.Direct ? "directly" : "through the AppHost's proxy")}; {options.Streams} streams ramped over {options.RampSeconds} s, a delta every {options.PaceMs} ms, {options.Sentences} sentences an answer");
        Console.WriteLine($"client: ulimit -n {FileLimit()} (a process cannot raise its own hard limit; 2 descriptors a stream at the proxy, 1 at each end), MaxConnectionsPerServer unlimited");

        // Unlimited connections: each SSE stream holds its own for the whole answer. No HttpClient timeout: the run's own deadline bounds it.
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = address,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        await SignInAsync(http);

        // Warm-up: JIT, Firestore channel, connection pool; then let the process settle before the baseline.
        using (var warm = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
        {
            var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ChatAsync(http, new ConcurrentChat(), new OpenCount(), warm.Token)));
            var failed = runs.FirstOrDefault(r => r.Error is not null);
            if (failed is not null)
            {
                throw new InvalidOperationException("warm-up chat failed: " + failed.Error);
            }
        }

        await Task.Delay(TimeSpan.FromSeconds(5));
        var baseline = await MemorySample.TakeAsync(api.Pid, "baseline, idle after warm-up", 0, options.FullGc);

        var answerSeconds = options.Sentences * 25 * options.PaceMs / 1000.0 / 1.1;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(options.RampSeconds + answerSeconds * 4 + 120));
        var open = new OpenCount();
        var chats = Enumerable.Range(0, options.Streams).Select(_ => new ConcurrentChat()).ToArray();
        var clock = Stopwatch.StartNew();
        var tasks = new List<Task<ConcurrentChat>>(options.Streams);
        for (var i = 0; i < options.Streams; i++)
        {
            var due = TimeSpan.FromSeconds(options.RampSeconds * (double)i / options.Streams);
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            tasks.Add(ChatAsync(http, chats[i], open, deadline.Token));
        }

        var rampTook = clock.Elapsed;

        // The peak: every stream has its headers and none has finished, or as close to that as the ramp allows.
        while (open.Opened < options.Streams && open.Finished == 0 && !deadline.IsCancellationRequested)
        {
            await Task.Delay(100);
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        var openAtSample = open.Current;
        var peak = await MemorySample.TakeAsync(api.Pid, "peak, streams open mid-answer", open.Current, options.FullGc);
        var openAfterSample = open.Current;

        var all = Task.WhenAll(tasks);
        await ((Task)all).WaitAsync(deadline.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        var elapsed = clock.Elapsed;
        var results = all.IsCompletedSuccessfully ? all.Result : chats.Select(c => { c.Error ??= "did not finish before the run's deadline"; return c; }).ToArray();

        await Task.Delay(TimeSpan.FromSeconds(3));
        var retained = await MemorySample.TakeAsync(api.Pid, "after, streams done but kept for resume", 0, options.FullGc);

        Report(options, results, open, rampTook, elapsed, openAtSample, openAfterSample, baseline, peak, retained);
    }

    private static void Report(Options options, ConcurrentChat[] results, OpenCount open, TimeSpan rampTook, TimeSpan elapsed,
        int openAtSample, int openAfterSample, MemorySample baseline, MemorySample peak, MemorySample retained)
    {
        var errors = results.Where(r => r.Error is not null).ToList();
        var gaps = results.SelectMany(r => r.GapsMs).ToArray();
        Array.Sort(gaps);
        var maxGaps = results.Where(r => r.GapsMs.Count > 0).Select(r => r.GapsMs.Max()).Order().ToArray();
        var firsts = results.Where(r => r.FirstDelta is not null).Select(r => (float)r.FirstDelta!.Value.TotalMilliseconds).Order().ToArray();
        var openStreams = (openAtSample + openAfterSample) / 2.0;

        Console.WriteLine();
        Console.WriteLine($"ramp took {rampTook.TotalSeconds:F1} s; all done after {elapsed.TotalSeconds:F1} s; {results.Sum(r => r.Events):N0} events read");
        Console.WriteLine($"open at the same time: peak {open.Peak} of {options.Streams}; {openAtSample} when the peak sample started, {openAfterSample} when it ended");
        Console.WriteLine($"where each stream's longest gap was: {string.Join(", ", results.GroupBy(r => r.WorstGapAt).OrderByDescending(g => g.Count()).Take(4).Select(g => $"{g.Key} ({g.Count()})"))}");
        Console.WriteLine($"errors: {errors.Count}");
        foreach (var group in errors.GroupBy(e => Trim(e.Error!)).OrderByDescending(g => g.Count()).Take(8))
        {
            Console.WriteLine($"  {group.Count()} × {group.Key}");
        }

        Console.WriteLine();
        Console.WriteLine($"| sample | RSS | private (RssAnon) | GC heap less fragmentation (last collection) | GC committed | open streams |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var sample in new[] { baseline, peak, retained })
        {
            Console.WriteLine($"| {sample.Label} (load {sample.Load}) | {Mb(sample.RssKb * 1024)} | {Mb(sample.AnonKb * 1024)} | {Mb(sample.GcHeapBytes)} | {Mb(sample.GcCommittedBytes)} | {sample.Open} |");
        }

        double PerStream(long peakValue, long baseValue) => (peakValue - baseValue) / Math.Max(openStreams, 1) / 1024;
        Console.WriteLine();
        Console.WriteLine("| figure | measured | goal |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine($"| streams | {options.Streams} ({options.Target}, pace {options.PaceMs} ms, {options.Sentences} sentences) | 2,000 |");
        Console.WriteLine($"| peak open at once | {open.Peak} | {options.Streams} |");
        Console.WriteLine($"| errors | {errors.Count} | 0 |");
        Console.WriteLine($"| memory per open stream, RSS | {PerStream(peak.RssKb * 1024, baseline.RssKb * 1024):F1} KB | ≤ 64 KB |");
        Console.WriteLine($"| memory per open stream, private | {PerStream(peak.AnonKb * 1024, baseline.AnonKb * 1024):F1} KB | ≤ 64 KB |");
        Console.WriteLine($"| memory per open stream, GC heap | {PerStream(peak.GcHeapBytes, baseline.GcHeapBytes):F1} KB | |");
        Console.WriteLine($"| memory per finished stream kept for resume, GC heap | {(retained.GcHeapBytes - baseline.GcHeapBytes) / (double)Math.Max(results.Length, 1) / 1024:F1} KB | |");
        Console.WriteLine($"| event gap p50 / p99 / max ({gaps.Length:N0} gaps) | {P(gaps, 50):F0} / {P(gaps, 99):F0} / {(gaps.Length > 0 ? gaps[^1] : 0):F0} ms | |");
        Console.WriteLine($"| worst gap of a stream, p50 / p99 | {P(maxGaps, 50):F0} / {P(maxGaps, 99):F0} ms | |");
        Console.WriteLine($"| time to first delta p50 / p99 / max | {P(firsts, 50):F0} / {P(firsts, 99):F0} / {(firsts.Length > 0 ? firsts[^1] : 0):F0} ms | |");
        Console.WriteLine($"| load average (start of peak sample / end) | {peak.Load} / {Load()} | |");
    }

    private static string Trim(string error) => error.Length <= 160 ? error : error[..160] + "…";

    private static string Mb(long bytes) => $"{bytes / 1024.0 / 1024.0:N1} MB";

    private static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];

    private static float P(float[] sorted, int percentile) => Stats.Percentile(sorted, percentile);

    private static string FileLimit()
    {
        var line = File.ReadAllLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal)) ?? "";
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 5 ? $"{parts[3]} (hard {parts[4]})" : "unknown";
    }

    private static async Task SignInAsync(HttpClient http)
    {
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user_id = "bench-user" });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>One chat read to its end; every failure is recorded on the chat, never thrown.</summary>
    private static async Task<ConcurrentChat> ChatAsync(HttpClient http, ConcurrentChat chat, OpenCount open, CancellationToken cancellationToken)
    {
        // A budget far above the answer, yet small enough that thousands of reservations stay inside the user's quota.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/chat")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { message = Prompt, budget_max = 20_000 }), Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var started = Stopwatch.GetTimestamp();
        var opened = false;
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                chat.Error = $"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}";
                return chat;
            }

            open.Open();
            opened = true;
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            string? eventName = null;
            string? data = null;
            string? previous = null;
            var worst = -1f;
            long last = 0;
            var done = false;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line.Length == 0)
                {
                    if (eventName is null)
                    {
                        continue; // a comment (heartbeat) or the retry hint: not an event
                    }

                    var now = Stopwatch.GetTimestamp();
                    chat.Events++;
                    if (last != 0)
                    {
                        var gap = (float)Stopwatch.GetElapsedTime(last, now).TotalMilliseconds;
                        if (gap > worst)
                        {
                            (worst, chat.WorstGapAt) = (gap, $"{previous} → {eventName}");
                        }

                        chat.GapsMs.Add(gap);
                    }

                    (last, previous) = (now, eventName);
                    if (eventName == "message_delta")
                    {
                        chat.FirstDelta ??= Stopwatch.GetElapsedTime(started, now);
                    }
                    else if (eventName == "error")
                    {
                        chat.Error = "error event: " + data;
                    }
                    else if (eventName == "done")
                    {
                        done = true;
                    }

                    (eventName, data) = (null, null);
                }
                else if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    eventName = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && eventName is "error")
                {
                    data = line[6..];
                }
            }

            if (!done && chat.Error is null)
            {
                chat.Error = "stream ended without done";
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            chat.Error = "did not finish before the run's deadline";
        }
        catch (Exception e)
        {
            chat.Error = $"{e.GetType().Name}: {e.GetBaseException().Message}";
        }
        finally
        {
            if (opened)
            {
                open.Close();
            }
        }

        return chat;
    }

    /// <summary>Streams with headers and no end yet, and the most there were at once.</summary>
    private sealed class OpenCount
    {
        private int _current;
        private int _peak;
        private int _opened;
        private int _finished;

        public int Current => Volatile.Read(ref _current);

        public int Peak => Volatile.Read(ref _peak);

        public int Opened => Volatile.Read(ref _opened);

        public int Finished => Volatile.Read(ref _finished);

        public void Open()
        {
            Interlocked.Increment(ref _opened);
            var now = Interlocked.Increment(ref _current);
            int peak;
            while (now > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak)
            {
            }
        }

        public void Close()
        {
            Interlocked.Increment(ref _finished);
            Interlocked.Decrement(ref _current);
        }
    }

    /// <summary>The chat API's own process, found by the stack's run id and its service name in its environment.</summary>
    private sealed record ApiProcess(int Pid, Uri Address)
    {
        public static ApiProcess Find(string runId, string service)
        {
            var matches = new List<(int Pid, Dictionary<string, string> Environment)>();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid))
                {
                    continue;
                }

                try
                {
                    var environment = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0', StringSplitOptions.RemoveEmptyEntries)
                        .Select(v => v.Split('=', 2)).Where(kv => kv.Length == 2).GroupBy(kv => kv[0]).ToDictionary(g => g.Key, g => g.First()[1]);
                    if (environment.GetValueOrDefault(Stack.RunIdVariable) == runId && environment.GetValueOrDefault("OTEL_SERVICE_NAME") == service)
                    {
                        matches.Add((pid, environment));
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Gone, or not ours.
                }
            }

            // A launcher (dotnet run) shares the environment; the API is the one whose parent is not a match.
            var pids = matches.Select(m => m.Pid).ToHashSet();
            var api = matches.Where(m => !matches.Any(other => other.Pid != m.Pid && ParentOf(other.Pid) == m.Pid))
                .DefaultIfEmpty().First();
            if (api.Environment is null)
            {
                throw new InvalidOperationException($"no process of {service} for stack run {runId} (found {pids.Count})");
            }

            var urls = api.Environment.GetValueOrDefault("ASPNETCORE_URLS") ?? throw new InvalidOperationException($"{service} has no ASPNETCORE_URLS");
            var url = urls.Split(';')[0].Replace("localhost", "127.0.0.1", StringComparison.Ordinal);
            return new ApiProcess(api.Pid, new Uri(url));
        }

        private static int ParentOf(int pid)
        {
            try
            {
                var line = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("PPid:", StringComparison.Ordinal));
                return int.Parse(line[5..].Trim(), CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                return -1;
            }
        }
    }

    /// <summary>The process's resident and private memory (/proc) and its GC heap (dotnet-counters) at one moment.</summary>
    private sealed record MemorySample(string Label, string Load, int Open, long RssKb, long AnonKb, long GcHeapBytes, long GcCommittedBytes)
    {
        public static async Task<MemorySample> TakeAsync(int pid, string label, int open, bool fullGc)
        {
            if (fullGc)
            {
                // The runtime's GCHeapCollect keyword makes it run a full blocking GC (as dotnet-gcdump does, without
                // the heap walk): the heap figure below is then what is live, not live plus garbage not yet collected.
                // It pauses the process, so the gaps of a run with it include that pause.
                var trace = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-trace");
                var traceFile = Path.Combine(Path.GetTempPath(), $"gc-{pid}-{Guid.NewGuid():N}.nettrace");
                await Tool.RunAsync(trace, ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "--providers", "Microsoft-Windows-DotNETRuntime:0x800000:4",
                    "--duration", "00:00:00:02", "-o", traceFile], TimeSpan.FromMinutes(1));
                File.Delete(traceFile);
            }

            var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            var status = File.ReadAllLines($"/proc/{pid}/status");
            long Kb(string key) => long.Parse(status.First(l => l.StartsWith(key, StringComparison.Ordinal))[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            var rss = Kb("VmRSS:");
            var anon = Kb("RssAnon:");

            // Three one-second reports; the last one counts. The heap figure is what the last collection left, per generation.
            var tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-counters");
            var file = Path.Combine(Path.GetTempPath(), $"counters-{pid}-{Guid.NewGuid():N}.csv");
            await Tool.RunAsync(tool, ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "--format", "csv", "-o", file, "--duration", "00:00:00:04",
                "--counters", "System.Runtime[dotnet.gc.last_collection.heap.size,dotnet.gc.last_collection.heap.fragmentation.size,dotnet.gc.last_collection.memory.committed_size]"], TimeSpan.FromMinutes(1));
            long heap = 0, committed = 0;
            if (File.Exists(file))
            {
                var rows = File.ReadAllLines(file).Skip(1).Select(l => l.Split(',')).Where(r => r.Length >= 5).ToList();
                var lastTime = rows.Select(r => r[0]).LastOrDefault();
                foreach (var row in rows.Where(r => r[0] == lastTime))
                {
                    var value = (long)double.Parse(row[^1], CultureInfo.InvariantCulture);
                    if (row[2].StartsWith("dotnet.gc.last_collection.heap.size", StringComparison.Ordinal))
                    {
                        heap += value;
                    }
                    else if (row[2].StartsWith("dotnet.gc.last_collection.heap.fragmentation.size", StringComparison.Ordinal))
                    {
                        // Free space between objects (pinned buffers keep it from being compacted): not live.
                        heap -= value;
                    }
                    else if (row[2].StartsWith("dotnet.gc.last_collection.memory.committed_size", StringComparison.Ordinal))
                    {
                        committed += value;
                    }
                }

                File.Delete(file);
            }

            Console.WriteLine($"memory {label}{(fullGc ? " (after a full GC)" : "")}: RSS {rss / 1024.0:N1} MB, private {anon / 1024.0:N1} MB, GC heap {heap / 1048576.0:N1} MB, committed {committed / 1048576.0:N1} MB, load {load}");
            return new MemorySample(label, load, open, rss, anon, heap, committed);
        }
    }

    private static class Tool
    {
        public static async Task<string> RunAsync(string path, string[] arguments, TimeSpan timeout)
        {
            var start = new ProcessStartInfo(path, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            using var cancel = new CancellationTokenSource(timeout);
            var output = process.StandardOutput.ReadToEndAsync(cancel.Token);
            var error = process.StandardError.ReadToEndAsync(cancel.Token);
            try
            {
                await process.WaitForExitAsync(cancel.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                return $"{Path.GetFileName(path)} timed out";
            }

            return await output + await error;
        }
    }
}
