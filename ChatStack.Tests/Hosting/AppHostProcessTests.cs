using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Hosting;

/// <summary>The AppHost as a user meets it: started from a shell, stopped with Ctrl+C.</summary>
public class AppHostProcessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_missing_google_cloud_sdk_stops_the_apphost_with_one_clear_line()
    {
        using var appHost = AppHostProcess.Start(new Dictionary<string, string> { ["GoogleCloud__SdkPath"] = "/no/such/google-cloud-sdk" });

        var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exitCode);
        var error = appHost.StandardError.Trim();
        Assert.StartsWith("ChatStack cannot start: The Google Cloud SDK folder '/no/such/google-cloud-sdk'", error);
        Assert.DoesNotContain("\n", error);
        Assert.DoesNotContain("   at ", appHost.StandardOutput + appHost.StandardError);
    }

    [Fact]
    public async Task A_taken_dashboard_port_stops_the_apphost_with_one_clear_line()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        var port = ((IPEndPoint)occupant.LocalEndpoint).Port;
        using var appHost = AppHostProcess.Start(new Dictionary<string, string> { ["ASPNETCORE_URLS"] = $"http://localhost:{port}" });

        var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exitCode);
        Assert.StartsWith($"ChatStack cannot start: Port {port}, needed by the AppHost", appHost.StandardError.Trim());
        Assert.DoesNotContain("   at ", appHost.StandardOutput + appHost.StandardError);
    }

    [Theory]
    [InlineData(Signals.Interrupt)] // Ctrl+C in a terminal
    [InlineData(Signals.TerminateSignal)] // kill, an IDE's stop button
    public async Task Stopping_the_apphost_stops_every_process_it_started_within_seconds(int signal)
    {
        using var appHost = AppHostProcess.Start();
        await appHost.WaitForOutputAsync("Distributed application started", TimeSpan.FromSeconds(120));

        // The JVMs are the emulators; the services are their `dotnet run` launchers and the apps themselves.
        string[] markers = ["-XX:TieredStopAtLevel=1", "ChatStack.BigQueryEmulator", "ChatStack.ChatApi", "ChatStack.AnalyticsWorker"];
        Dictionary<string, IReadOnlyList<int>> started = [];
        var deadline = DateTime.UtcNow.AddSeconds(120);
        do
        {
            await Task.Delay(500);
            started = markers.ToDictionary(m => m, appHost.Descendants);
        }
        while (started.Values.Any(pids => pids.Count < 2) && DateTime.UtcNow < deadline);

        foreach (var (marker, pids) in started)
        {
            output.WriteLine($"{marker}: {string.Join(", ", pids)}");
            Assert.True(pids.Count >= 2, $"Expected two processes for '{marker}' (Pub/Sub and Firestore JVMs, or launcher and app), found {pids.Count}.");
        }
        await Task.Delay(TimeSpan.FromSeconds(3)); // the worker and the chat API have exported telemetry by now

        appHost.Signal(signal);
        var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var exited = Stopwatch.StartNew();
        output.WriteLine($"AppHost exit code after signal {signal}: {exitCode}");

        var all = started.Values.SelectMany(pids => pids).ToList();
        while (all.Any(AppHostProcess.IsAlive) && exited.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }

        output.WriteLine($"Last process gone {exited.Elapsed.TotalSeconds:F1} s after the AppHost exited");
        Assert.DoesNotContain(all, AppHostProcess.IsAlive);
        // A service whose last telemetry export waits out the SDK's 10 s timeout on the stopped dashboard outlives
        // the AppHost by ~10 s; with the AppHost's local timeout of 2 s all are gone in about 2.5 s.
        Assert.True(exited.Elapsed < TimeSpan.FromSeconds(6), $"The services outlived the AppHost by {exited.Elapsed.TotalSeconds:F1} s.");
    }
}
