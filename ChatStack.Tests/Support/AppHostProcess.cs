using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ChatStack.Tests.Support;

/// <summary>The built AppHost run as a user runs it: its own process, its own console.</summary>
public sealed class AppHostProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private AppHostProcess(IDictionary<string, string> environment, string[] arguments)
    {
        var testBin = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        var configuration = Path.GetFileName(Path.GetDirectoryName(testBin))!; // bin/<Configuration>/net10.0
        var appHostDir = Projects.ChatStack_AppHost.ProjectPath;
        var dll = Path.Combine(appHostDir, "bin", configuration, Path.GetFileName(testBin), "ChatStack.AppHost.dll");

        // As from a terminal: a test run started in the background (CI) ignores SIGINT, children inherit that, and .NET
        // then leaves Ctrl+C unhandled; env puts it back to the default the AppHost replaces with its own handler.
        var start = new ProcessStartInfo("env", ["--default-signal=INT", "dotnet", dll, .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = appHostDir,
        };
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        start.Environment["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true";
        start.Environment["ASPNETCORE_URLS"] = $"http://localhost:{FreePort()}";
        start.Environment["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://localhost:{FreePort()}";
        start.Environment["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"http://localhost:{FreePort()}";
        foreach (var (key, value) in IsolatedAppHost.Settings)
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { lock (_stdout) { _stdout.AppendLine(e.Data); } };
        _process.ErrorDataReceived += (_, e) => { lock (_stderr) { _stderr.AppendLine(e.Data); } };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static AppHostProcess Start(IDictionary<string, string>? environment = null, params string[] arguments) =>
        new(environment ?? new Dictionary<string, string>(), arguments);

    public int Id => _process.Id;

    public string StandardOutput { get { lock (_stdout) { return _stdout.ToString(); } } }

    public string StandardError { get { lock (_stderr) { return _stderr.ToString(); } } }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!StandardOutput.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The AppHost did not print '{text}'.\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>What Ctrl+C or a service manager sends.</summary>
    public void Signal(int signal) => Signals.Send(_process.Id, signal);

    /// <summary>
    /// Processes started on this AppHost's behalf whose command line contains <paramref name="marker"/> (Linux
    /// /proc). DCP detaches from the AppHost and watches it with <c>--monitor PID</c>, so its tree counts too.
    /// </summary>
    public IReadOnlyList<int> Descendants(string marker)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && TryReadParent(pid) is { } parent)
            {
                parents[pid] = parent;
            }
        }

        var roots = parents.Keys.Where(pid => CommandLine(pid).Contains($"--monitor {_process.Id} ", StringComparison.Ordinal))
            .Append(_process.Id).ToHashSet();
        return parents.Keys.Where(pid => IsBelow(pid, parents, roots) && CommandLine(pid).Contains(marker, StringComparison.Ordinal)).ToList();
    }

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ");

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }

    private static bool IsBelow(int pid, Dictionary<int, int> parents, HashSet<int> roots)
    {
        for (var current = pid; parents.TryGetValue(current, out var parent) && parent > 1; current = parent)
        {
            if (roots.Contains(parent))
            {
                return true;
            }
        }

        return false;
    }

    private static int? TryReadParent(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1]);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
