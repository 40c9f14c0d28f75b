using ChatStack.Contracts;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>How the worker pulls chat events and writes them (section <c>Ingestion</c>).</summary>
public sealed class IngestionOptions
{
    public string Subscription { get; set; } = ResourceNames.ChatEventsSubscription;

    public string Dataset { get; set; } = ResourceNames.Dataset;

    /// <summary>Concurrent StreamingPull streams (or unary Pull loops): the emulator serves one stream near 2k messages/s.</summary>
    public int Streams { get; set; } = 4;

    /// <summary>StreamingPull against real Pub/Sub; unary Pull against the emulator (<see cref="PullMode.Auto"/>).</summary>
    public PullMode PullMode { get; set; } = PullMode.Auto;

    /// <summary>Messages held (received, not yet acked) before the worker stops reading its streams.</summary>
    public int MaxOutstandingMessages { get; set; } = 2_000;

    /// <summary>Payload bytes held before the worker stops reading its streams.</summary>
    public long MaxOutstandingBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Rows per insertAll request (BigQuery recommends about 500).</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>Longest a received message waits for its batch to fill.</summary>
    public TimeSpan BatchLatency { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Ack deadline the worker asks for and extends while a batch is still being written.</summary>
    public int AckDeadlineSeconds { get; set; } = 60;

    /// <summary>Payload bytes per batch; insertAll takes at most 10 MB a request, and rows are larger than their messages.</summary>
    public long MaxBatchBytes { get; set; } = 4L * 1024 * 1024;

    /// <summary>How long rows naming a field the table lacks are tried again (a column just added takes minutes to reach streaming inserts).</summary>
    public TimeSpan SchemaChangeWait { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Longest one insertAll may take before it is given up and tried again (BigQuery answers in seconds).</summary>
    public TimeSpan InsertTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait between tries of a write that keeps failing (it is retried until it succeeds or the worker stops).</summary>
    public TimeSpan MaxInsertBackoff { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>How the worker receives messages.</summary>
public enum PullMode
{
    /// <summary>StreamingPull, except against the emulator, which strands the messages of a StreamingPull client that died.</summary>
    Auto,

    Streaming,

    Unary,
}
