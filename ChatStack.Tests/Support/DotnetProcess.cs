using System.Diagnostics;
using System.Text;

namespace ChatStack.Tests.Support;

/// <summary>A built .NET app in a process of its own, as a shell starts it, with its output captured.</summary>
public sealed class DotnetProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly string _name;

    public DotnetProcess(string dll, IEnumerable<string> arguments, IEnumerable<KeyValuePair<string, string>> environment, string? workingDirectory = null)
    {
        // As from a terminal: a test run started in the background (CI) ignores SIGINT, children inherit that, and .NET
        // then leaves Ctrl+C unhandled; env puts it back to the default the app replaces with its own handler.
        _name = Path.GetFileNameWithoutExtension(dll);
        var start = new ProcessStartInfo("env", ["--default-signal=INT", "dotnet", dll, .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? Path.GetDirectoryName(dll)!,
        };
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

    /// <summary>
    /// The dll of one of the solution's apps as its own build left it: the tests' bin holds it too, but with the
    /// tests' set of dependencies, which is not the app's.
    /// </summary>
    public static string BuiltApp(string project)
    {
        var testBin = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        var configuration = Path.GetFileName(Path.GetDirectoryName(testBin))!; // bin/<Configuration>/net10.0
        var solution = Path.GetDirectoryName(Projects.ChatStack_AppHost.ProjectPath)!;
        return Path.Combine(solution, project, "bin", configuration, Path.GetFileName(testBin), $"{project}.dll");
    }

    public int Id => _process.Id;

    public string StandardOutput { get { lock (_stdout) { return _stdout.ToString(); } } }

    public string StandardError { get { lock (_stderr) { return _stderr.ToString(); } } }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>Waits for <paramref name="text"/> on stdout; the timeout's message carries both outputs.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!StandardOutput.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{_name} did not print '{text}'.\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no flush.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
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
