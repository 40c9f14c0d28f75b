using System.Diagnostics;

namespace ChatStack.ChatApi.Agent;

/// <summary>Traces of agent runs. The source is named after the application, which the service defaults export.</summary>
internal static class ChatTelemetry
{
    public static readonly ActivitySource Source = new("ChatStack.ChatApi");
}
