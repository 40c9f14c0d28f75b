using Microsoft.Extensions.Configuration;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The cold path's switches, read as plain configuration so environment variables work:
/// <c>ENABLE_DUAL_WRITE</c> (master) and <c>ENABLE_PUBSUB</c> (both default true). With either off the chat API
/// keeps its Firestore hot path and writes no outbox records, so nothing reaches Pub/Sub or the warehouse.
/// </summary>
internal sealed record DualWriteOptions
{
    public bool DualWrite { get; init; } = true;

    public bool PubSub { get; init; } = true;

    /// <summary>Message text in chat events (otherwise only its SHA-256 and length): <c>OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT</c>.</summary>
    public bool CaptureContent { get; init; }

    /// <summary>Outbox records per publish.</summary>
    public int BatchSize { get; init; } = 500;

    public bool Enabled => DualWrite && PubSub;

    public static DualWriteOptions From(IConfiguration configuration) => new()
    {
        DualWrite = configuration.GetValue("ENABLE_DUAL_WRITE", true),
        PubSub = configuration.GetValue("ENABLE_PUBSUB", true),
        CaptureContent = Telemetry.ContentCaptureOptions.From(configuration).Enabled,
    };
}
