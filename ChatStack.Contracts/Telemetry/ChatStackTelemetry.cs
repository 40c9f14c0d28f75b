namespace ChatStack.Contracts.Telemetry;

/// <summary>
/// The ActivitySource and Meter names of every ChatStack service, in one place: ServiceDefaults exports all of
/// them for every service, so a span or metric a service adds is never silently dropped.
/// </summary>
public static class ChatStackTelemetry
{
    public const string ChatApi = "ChatStack.ChatApi";

    public const string AnalyticsWorker = "ChatStack.AnalyticsWorker";

    public const string Provisioner = "ChatStack.Provisioner";

    public static readonly string[] Sources = [ChatApi, AnalyticsWorker, Provisioner];

    public static readonly string[] Meters = [ChatApi, AnalyticsWorker, Provisioner];
}
