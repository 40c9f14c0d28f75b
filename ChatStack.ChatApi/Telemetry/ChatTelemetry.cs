using System.Diagnostics;
using ChatStack.Contracts.Telemetry;

namespace ChatStack.ChatApi.Telemetry;

/// <summary>The chat API's spans, under the source name ChatStackTelemetry gives and the service defaults export.</summary>
internal static class ChatTelemetry
{
    public static readonly ActivitySource Source = new(ChatStackTelemetry.ChatApi);

    /// <summary><c>gen_ai.agent.name</c> of the one agent the API runs.</summary>
    public const string AgentName = "chatstack";

    /// <summary>
    /// A root span for background work (the outbox relay), so it never nests under whatever span happened to be
    /// current when the hosted service started.
    /// </summary>
    public static Activity? StartRoot(string name, ActivityKind kind, IEnumerable<ActivityLink>? links = null, IEnumerable<KeyValuePair<string, object?>>? tags = null)
    {
        // Only for background loops: the caller's async context loses its current span, which it has none of.
        Activity.Current = null;
        return Source.StartActivity(name, kind, parentContext: default, tags, links);
    }

    /// <summary>Marks a span failed the way the conventions ask: status Error and <c>error.type</c>.</summary>
    public static void SetError(this Activity? activity, string errorType, string? description = null)
    {
        activity?.SetStatus(ActivityStatusCode.Error, description ?? errorType);
        activity?.SetTag(GenAiAttributes.ErrorType, errorType);
    }
}

/// <summary>
/// Whether message content (prompts, answers, tool arguments and results) may appear in telemetry and chat events:
/// only when <c>OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true</c>.
/// </summary>
internal sealed record ContentCaptureOptions(bool Enabled)
{
    public static ContentCaptureOptions From(IConfiguration configuration) =>
        new(configuration.GetValue(GenAiContentCapture.Variable, false));
}
