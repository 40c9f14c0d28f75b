using System.Net;
using System.Net.Sockets;

namespace ChatStack.Tests.Support;

/// <summary>The built AppHost run as a user runs it: its own process, its own console.</summary>
public sealed class AppHostProcess : IDisposable
{
    private readonly DotnetProcess _process;

    private AppHostProcess(IDictionary<string, string> environment, string[] arguments)
    {
        var dll = DotnetProcess.BuiltApp("ChatStack.AppHost");

        var variables = new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["DOTNET_ENVIRONMENT"] = "Development",
            ["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true",
            ["ASPNETCORE_URLS"] = $"http://localhost:{FreePort()}",
            ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://localhost:{FreePort()}",
            ["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"http://localhost:{FreePort()}",
        };
        foreach (var (key, value) in IsolatedAppHost.Settings)
        {
            variables[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }
        foreach (var (key, value) in environment)
        {
            variables[key] = value;
        }

        _process = new DotnetProcess(dll, arguments, variables, Projects.ChatStack_AppHost.ProjectPath);
    }

    public static AppHostProcess Start(IDictionary<string, string>? environment = null, params string[] arguments) =>
        new(environment ?? new Dictionary<string, string>(), arguments);

    public int Id => _process.Id;

    public string StandardOutput => _process.StandardOutput;

    public string StandardError => _process.StandardError;

    public Task<int> WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync(timeout);

    public Task WaitForOutputAsync(string text, TimeSpan timeout) => _process.WaitForOutputAsync(text, timeout);

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

    public void Dispose() => _process.Dispose();

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
