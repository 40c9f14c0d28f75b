using System.Diagnostics;
using ChatStack.ChatApi.Agent;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// Loads the default model's encoding while the host starts, on a thread of its own: a vocabulary takes ~200 ms to
/// load, which a new instance's first chat would otherwise wait for. Start-up is not delayed; a chat that comes
/// sooner waits for the same load instead of starting a second one.
/// </summary>
internal sealed class TokenizerWarmup(ITokenCounterProvider counters, ModelCatalog catalog, ILogger<TokenizerWarmup> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        var watch = Stopwatch.StartNew();
        try
        {
            // Counting once also runs the counting path's first-call work (its caches, any code left to the JIT).
            counters.ForModel(catalog.DefaultModel).CountTokens("Warm up: the first chat counts with this vocabulary.");
            logger.LogInformation("Loaded the token encoding of the default model {Model} in {Milliseconds:F0} ms", catalog.DefaultModel, watch.Elapsed.TotalMilliseconds);
        }
        catch (Exception e)
        {
            // Only a head start: the first chat loads it again and reports what is wrong to its caller.
            logger.LogWarning(e, "Could not load the token encoding of the default model {Model} ahead of the first chat", catalog.DefaultModel);
        }
    }, stoppingToken);
}
