namespace ChatStack.Tests.Support;

/// <summary>The built analytics worker in a process of its own, so a test can kill it the hard way.</summary>
public sealed class WorkerProcess(IDictionary<string, string> environment) : IDisposable
{
    private readonly DotnetProcess _process = new(Path.Combine(AppContext.BaseDirectory, "ChatStack.AnalyticsWorker.dll"), [],
        [new("ASPNETCORE_URLS", "http://127.0.0.1:0"), new("DOTNET_ENVIRONMENT", "Development"), .. environment]);

    public string Log => _process.StandardOutput + _process.StandardError;

    /// <summary>SIGKILL: in-flight batches cut off wherever they are.</summary>
    public void Crash() => _process.Kill();

    /// <summary>SIGTERM, as Cloud Run and the AppHost stop it.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        Signals.Terminate(_process.Id);
        return await _process.WaitForExitAsync(timeout);
    }

    public void Dispose() => _process.Dispose();
}
