using System.Diagnostics;

namespace ChatStack.ChatApi.Agent;

/// <summary>Traces of agent runs, under the name ChatStackTelemetry gives and the service defaults export.</summary>
internal static class ChatTelemetry
{
    public static readonly ActivitySource Source = new(ChatStack.Contracts.Telemetry.ChatStackTelemetry.ChatApi);
}
