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

    [Fact]
    public async Task Stopping_the_apphost_leaves_no_emulator_jvm_behind()
    {
        using var appHost = AppHostProcess.Start();
        await appHost.WaitForOutputAsync("Distributed application started", TimeSpan.FromSeconds(120));

        IReadOnlyList<int> jvms = [];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (jvms.Count < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            jvms = appHost.Descendants("-XX:TieredStopAtLevel=1");
        }

        Assert.Equal(2, jvms.Count); // Pub/Sub and Firestore
        output.WriteLine($"Emulator JVMs: {string.Join(", ", jvms)}");

        appHost.Terminate();
        var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(90));
        output.WriteLine($"AppHost exit code after SIGTERM: {exitCode}");

        var gone = DateTime.UtcNow.AddSeconds(20);
        while (jvms.Any(AppHostProcess.IsAlive) && DateTime.UtcNow < gone)
        {
            await Task.Delay(250);
        }

        Assert.DoesNotContain(jvms, AppHostProcess.IsAlive);
    }
}
