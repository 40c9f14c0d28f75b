using System.Diagnostics;
using ChatStack.Tests.Support;

namespace ChatStack.Bench.Pipeline;

/// <summary>
/// Start-up as a developer meets it: <c>dotnet run --project ChatStack.AppHost</c> (launch profile <c>http</c>) until
/// the chat API and the analytics worker answer <c>/health</c> through their launch-profile ports. The API waits for
/// the Pub/Sub and Firestore emulators, the worker for the provisioner's run and so for BigQuery: both healthy is
/// the whole stack healthy. Cold: the first start after a build, with build servers shut down and the local
/// warehouse deleted; warm: the same command again.
/// </summary>
internal static class StartupBench
{
    private static readonly Uri[] Health = [new("http://localhost:5280/health"), new("http://localhost:5290/health")];

    public static async Task RunAsync(string repository, int runs)
    {
        var results = new List<(string Kind, TimeSpan Healthy)>();
        for (var run = 0; run < runs; run++)
        {
            var cold = run == 0;
            if (cold)
            {
                // Built first (untimed): cold means the first start after a build, not a compile.
                await RunToEndAsync("dotnet", ["build", "ChatStack.AppHost"], repository);
                await RunToEndAsync("dotnet", ["build-server", "shutdown"], repository);
                var warehouse = Path.Combine(repository, "ChatStack.BigQueryEmulator", ".data");
                if (Directory.Exists(warehouse))
                {
                    Directory.Delete(warehouse, recursive: true);
                }
            }

            results.Add((cold ? "cold" : "warm", await StartOnceAsync(repository)));
            Console.WriteLine($"{results[^1].Kind}: {results[^1].Healthy.TotalSeconds:F1} s to all-healthy (load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
        }

        Console.WriteLine();
        Console.WriteLine("| run | dotnet run → all healthy |");
        Console.WriteLine("|---|---:|");
        foreach (var (kind, healthy) in results)
        {
            Console.WriteLine($"| {kind} | {healthy.TotalSeconds:F1} s |");
        }
    }

    private static async Task<TimeSpan> StartOnceAsync(string repository)
    {
        var start = new ProcessStartInfo("dotnet", ["run", "--project", "ChatStack.AppHost"])
        {
            WorkingDirectory = repository,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var stopwatch = Stopwatch.StartNew();
        using var apphost = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        apphost.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        apphost.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        apphost.BeginOutputReadLine();
        apphost.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            var deadline = TimeSpan.FromMinutes(5);
            while (!await AllHealthyAsync(http))
            {
                if (apphost.HasExited || stopwatch.Elapsed > deadline)
                {
                    throw new InvalidOperationException($"The AppHost did not become healthy (exited: {apphost.HasExited}):\n{output}");
                }

                await Task.Delay(100);
            }

            return stopwatch.Elapsed;
        }
        finally
        {
            // Ctrl+C as a developer stops it; the AppHost stops the emulators and services.
            Signals.Terminate(apphost.Id);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await apphost.WaitForExitAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
                apphost.Kill(entireProcessTree: true);
            }

            // Let DCP release the fixed ports before the next run.
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
    }

    private static async Task<bool> AllHealthyAsync(HttpClient http)
    {
        foreach (var uri in Health)
        {
            try
            {
                using var response = await http.GetAsync(uri);
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }

        return true;
    }

    private static async Task RunToEndAsync(string file, string[] arguments, string directory)
    {
        using var process = Process.Start(new ProcessStartInfo(file, arguments) { WorkingDirectory = directory, RedirectStandardOutput = true })!;
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
    }
}
