using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Bench.Pipeline;

/// <summary>
/// A new instance of the deployed chat API, as Cloud Run starts one: the published app (ReadyToRun, as the container
/// images are built, against the same publish without it) started as a process, timed to <c>/health</c> and through
/// its first two chats. The in-memory store and no Pub/Sub, so only the API's own start is measured.
/// </summary>
internal static class ColdStartBench
{
    public static async Task RunAsync(string repository, int runs)
    {
        var work = Directory.CreateTempSubdirectory("chatstack-coldstart-");
        try
        {
            var builds = new (string Name, string Directory)[] { ("JIT only", Path.Combine(work.FullName, "jit")), ("ReadyToRun (the images)", Path.Combine(work.FullName, "r2r")) };
            await PublishAsync(repository, builds[0].Directory, "-p:PublishReadyToRun=false");
            await PublishAsync(repository, builds[1].Directory);
            var results = builds.ToDictionary(b => b.Name, _ => new List<Start>());
            for (var run = 0; run < runs; run++)
            {
                foreach (var (name, directory) in run % 2 == 0 ? builds : builds.Reverse())
                {
                    var start = await StartOnceAsync(directory);
                    results[name].Add(start);
                    Console.WriteLine($"{name}: healthy {start.Healthy:F0} ms, first chat: first delta {start.FirstDelta:F0} ms, done {start.FirstDone:F0} ms; " +
                        $"second chat done {start.SecondDone:F0} ms; CPU {start.CpuMs} ms");
                }
            }

            Console.WriteLine();
            Console.WriteLine($"| published chat API (median of {runs}) | start → /health 200 | first chat: first delta | first chat: done | second chat: done | CPU to the end of the first chat |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|");
            foreach (var (name, starts) in results)
            {
                Console.WriteLine($"| {name} | {Median(starts, s => s.Healthy):F0} ms | {Median(starts, s => s.FirstDelta):F0} ms | {Median(starts, s => s.FirstDone):F0} ms | " +
                    $"{Median(starts, s => s.SecondDone):F0} ms | {Median(starts, s => s.CpuMs):F0} ms |");
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private sealed record Start(double Healthy, double FirstDelta, double FirstDone, double SecondDone, double CpuMs);

    private static double Median(List<Start> starts, Func<Start, double> figure) => starts.Select(figure).Order().ElementAt(starts.Count / 2);

    private static async Task PublishAsync(string repository, string output, params string[] properties)
    {
        var watch = Stopwatch.StartNew();
        using var publish = Process.Start(new ProcessStartInfo("dotnet", ["publish", "ChatStack.ChatApi", "-c", "Release", "-nologo", "-v", "q", "-o", output, .. properties])
        {
            WorkingDirectory = repository,
            RedirectStandardOutput = true,
        })!;
        var log = await publish.StandardOutput.ReadToEndAsync();
        await publish.WaitForExitAsync();
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet publish {string.Join(' ', properties)} failed:\n{log}");
        }

        Console.WriteLine($"published {string.Join(' ', properties)} in {watch.Elapsed.TotalSeconds:F0} s: {Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) / 1_000_000} MB");
    }

    private static async Task<Start> StartOnceAsync(string directory)
    {
        var port = FreePort();
        var start = new ProcessStartInfo("dotnet", [Path.Combine(directory, "ChatStack.ChatApi.dll")])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Development", // the development token endpoint signs the bench in
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["GOOGLE_CLOUD_PROJECT"] = "chatstack-coldstart",
            ["FIRESTORE_EMULATOR_HOST"] = "127.0.0.1:9",
            ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:9",
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_DUAL_WRITE"] = "false",
            ["Chat__Offline__DeltaDelayMs"] = "0",
            ["Logging__LogLevel__Default"] = "Warning",
        })
        {
            start.Environment[key] = value;
        }

        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var address = new Uri($"http://127.0.0.1:{port}");
            using var probe = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(2) };
            while (!await HealthyAsync(probe))
            {
                if (process.HasExited || watch.Elapsed > TimeSpan.FromMinutes(1))
                {
                    throw new InvalidOperationException($"The published chat API did not become healthy (exited: {process.HasExited}).");
                }

                await Task.Delay(10);
            }

            var healthy = watch.Elapsed.TotalMilliseconds;
            using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(1) };
            using (var token = await client.PostAsJsonAsync("/api/dev/token", new { user_id = "coldstart" }))
            {
                var body = await token.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", body.GetProperty("access_token").GetString());
            }

            var (firstDelta, firstDone) = await ChatAsync(client);
            var cpu = CpuAccounting.CpuTicks(process.Id)!.Value * CpuAccounting.MsPerTick;
            var (_, secondDone) = await ChatAsync(client);
            return new Start(healthy, firstDelta, firstDone, secondDone, cpu);
        }
        finally
        {
            Signals.Terminate(process.Id);
            await process.WaitForExitAsync();
        }
    }

    private static async Task<(double FirstDelta, double Done)> ChatAsync(HttpClient client)
    {
        var watch = Stopwatch.StartNew();
        double? firstDelta = null;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/chat") { Content = JsonContent.Create(new { message = "What is 6*7? Tell me about plums." }) };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await foreach (var message in Sse.ReadAsync(await response.Content.ReadAsStreamAsync()))
        {
            firstDelta ??= message.Event == "message_delta" ? watch.Elapsed.TotalMilliseconds : null;
        }

        return (firstDelta ?? double.NaN, watch.Elapsed.TotalMilliseconds);
    }

    private static async Task<bool> HealthyAsync(HttpClient probe)
    {
        try
        {
            using var response = await probe.GetAsync("/health");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
