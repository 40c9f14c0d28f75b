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
        MalformedMessages = _meter.CreateCounter<long>("chatstack.worker.malformed_messages", "{message}", "Messages that are not a chat event this version can store.");
        IngestionLag = _meter.CreateHistogram<double>("chatstack.worker.ingestion_lag", "s", "From the event's timestamp to BigQuery accepting its row.");
    }

    public Counter<long> RowsWritten { get; }

    public Counter<long> InsertErrors { get; }

    public Counter<long> MalformedMessages { get; }

    public Histogram<double> IngestionLag { get; }

    public void Dispose() => _meter.Dispose();
}
