using Microsoft.Extensions.Configuration;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The storage switches, read as plain configuration so environment variables work (all default true):
/// <c>ENABLE_DUAL_WRITE</c> is the master switch of the cold path, <c>ENABLE_PUBSUB</c> its Pub/Sub leg, and
/// <c>ENABLE_FIRESTORE_WRITE</c> the hot path. With the hot path off, sessions and the outbox live in this
/// process's memory: chats work, history lasts as long as the process, and events still reach Pub/Sub.
/// </summary>
internal sealed record DualWriteOptions
{
    public bool DualWrite { get; init; } = true;

    public bool PubSub { get; init; } = true;

    public bool FirestoreWrite { get; init; } = true;

    /// <summary>
    /// Message text in chat events (otherwise only its keyed hash, <see cref="ContentHash"/>, and length):
    /// <c>OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT</c>.
    /// </summary>
    public bool CaptureContent { get; init; }

    /// <summary>Outbox records per publish.</summary>
    public int BatchSize { get; init; } = 500;

    /// <summary>
    /// Events the in-memory outbox (hot path off) holds while Pub/Sub is unreachable; past it new chats get 503,
    /// so no accepted event is dropped. About 1 KB each.
    /// </summary>
    public int MemoryOutboxCapacity { get; init; } = 50_000;

    /// <summary>Whether chat events go to Pub/Sub at all.</summary>
    public bool Enabled => DualWrite && PubSub;

    public static DualWriteOptions From(IConfiguration configuration) => new()
    {
        DualWrite = configuration.GetValue("ENABLE_DUAL_WRITE", true),
        PubSub = configuration.GetValue("ENABLE_PUBSUB", true),
        FirestoreWrite = configuration.GetValue("ENABLE_FIRESTORE_WRITE", true),
        CaptureContent = Telemetry.ContentCaptureOptions.From(configuration).Enabled,
        MemoryOutboxCapacity = configuration.GetValue("DualWrite:MemoryOutboxCapacity", 50_000),
    };
}
