using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>The worker's spans and metrics.</summary>
public sealed class IngestionTelemetry : IDisposable
{
    public const string Name = ChatStack.Contracts.Telemetry.ChatStackTelemetry.AnalyticsWorker;

    public static readonly ActivitySource ActivitySource = new(Name);

    private readonly Meter _meter;

    public IngestionTelemetry(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(Name);
        RowsWritten = _meter.CreateCounter<long>("chatstack.worker.rows_written", "{row}", "Rows BigQuery accepted, by table.");
        InsertErrors = _meter.CreateCounter<long>("chatstack.worker.insert_errors", "{row}", "Rows BigQuery rejected as invalid; their messages are nacked toward the dead-letter topic.");
        InsertFailures = _meter.CreateCounter<long>("chatstack.worker.insert_failures", "{request}",
            "insertAll requests that failed as a whole (outage, missing grant or table); retried until they succeed, their messages held.");
        MalformedMessages = _meter.CreateCounter<long>("chatstack.worker.malformed_messages", "{message}", "Messages that are not a chat event this version can store.");
        DeadLettered = _meter.CreateCounter<long>("chatstack.worker.dead_lettered", "{message}",
            "Messages nacked on their last delivery attempt: Pub/Sub moves them to the dead-letter topic.");
        IngestionLag = _meter.CreateHistogram<double>("chatstack.worker.ingestion_lag", "s", "From Pub/Sub accepting the message to BigQuery accepting its row.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LagBuckets });
        EventLag = _meter.CreateHistogram<double>("chatstack.worker.event_lag", "s",
            "From the chat event happening in the API to its row in BigQuery: outbox wait, Pub/Sub and batching together.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LagBuckets });
    }

    public Counter<long> RowsWritten { get; }

    public Counter<long> InsertErrors { get; }

    public Counter<long> InsertFailures { get; }

    public Counter<long> MalformedMessages { get; }

    public Counter<long> DeadLettered { get; }

    public Histogram<double> IngestionLag { get; }

    public Histogram<double> EventLag { get; }

    // Batching alone adds up to 200 ms; an outage of Pub/Sub or BigQuery can hold events for minutes.
    private static readonly double[] LagBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

    public void Dispose() => _meter.Dispose();
}
