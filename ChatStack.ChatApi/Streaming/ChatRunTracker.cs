using System.Collections.Concurrent;

namespace ChatStack.ChatApi.Streaming;

/// <summary>
/// Runs in flight. On shutdown the runs are cancelled (through ApplicationStopping) and this waits for them to
/// finalize, so a deploy does not lose the partial answers it interrupted.
/// </summary>
internal sealed class ChatRunTracker(ILogger<ChatRunTracker> logger) : IHostedService
{
    private readonly ConcurrentDictionary<Task, byte> _runs = new();

    public void Track(Task run)
    {
        _runs.TryAdd(run, 0);
        run.ContinueWith(t => _runs.TryRemove(t, out _), TaskScheduler.Default);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var running = _runs.Keys.ToArray();
        if (running.Length == 0)
        {
            return;
        }

        logger.LogInformation("Waiting for {Count} chat runs to finalize", running.Length);
        await Task.WhenAll(running).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
