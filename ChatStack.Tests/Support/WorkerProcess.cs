using System.Diagnostics;
using System.Text;

namespace ChatStack.Tests.Support;

/// <summary>The built analytics worker in a process of its own, so a test can kill it the hard way.</summary>
public sealed class WorkerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    public WorkerProcess(IDictionary<string, string> environment)
    {
        var testBin = AppContext.BaseDirectory;
        var start = new ProcessStartInfo("dotnet", [Path.Combine(testBin, "ChatStack.AnalyticsWorker.dll")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = testBin,
        };
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) { _log.AppendLine(e.Data); } };
        _process.ErrorDataReceived += (_, e) => { lock (_log) { _log.AppendLine(e.Data); } };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Log { get { lock (_log) { return _log.ToString(); } } }

    /// <summary>SIGKILL: no shutdown hooks, no flush, in-flight batches cut off wherever they are.</summary>
    public void Crash()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as Cloud Run and the AppHost stop it.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        Signals.Terminate(_process.Id);
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }
}
