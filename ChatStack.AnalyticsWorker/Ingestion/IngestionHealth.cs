using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Whether the worker's writes go through. A write that fails is retried until it succeeds, so the process stays up
/// and pulling pauses; once that has lasted <see cref="IngestionOptions.MaxInsertBackoff"/>, <c>/health</c> says
/// Degraded (still 200: a probe that restarted the worker would hand its messages back and spend their delivery
/// attempts after all), and the description says how long and why.
/// </summary>
public sealed class IngestionHealth(TimeProvider time, IOptions<IngestionOptions> options) : IHealthCheck
{
    private long _failingSince; // a TimeProvider timestamp; 0 while writes go through
    private volatile string? _lastError;

    /// <summary>How long writes have been failing without one going through.</summary>
    public TimeSpan FailingFor => Interlocked.Read(ref _failingSince) is var since and not 0 ? time.GetElapsedTime(since) : TimeSpan.Zero;

    public void WriteFailed(string error)
    {
        _lastError = error;
        Interlocked.CompareExchange(ref _failingSince, time.GetTimestamp(), 0);
    }

    public void WriteSucceeded() => Interlocked.Exchange(ref _failingSince, 0);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var failing = FailingFor;
        return Task.FromResult(failing >= options.Value.MaxInsertBackoff
            ? HealthCheckResult.Degraded($"BigQuery writes have failed for {failing:g} and are retried; messages wait in the subscription. Last error: {_lastError}")
            : HealthCheckResult.Healthy());
    }
}
