namespace ChatStack.Tests.Support;

/// <summary>
/// Arguments for an AppHost that tests or benchmarks start beside a developer's own stack: ports of its own (the
/// AppHost refuses to start on ports in use), and the offline model whatever the developer's AppHost user secrets
/// configure. A file of its own, so the benchmarks can link it.
/// </summary>
public static class IsolatedAppHost
{
    public static readonly string[] Args =
    [
        "--ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://127.0.0.1:0", "--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://127.0.0.1:0",
        "--ASPNETCORE_URLS=http://127.0.0.1:0", "--Parameters:openai-api-key=", "--Parameters:openai-endpoint=", "--Parameters:chat-model=",
    ];
}
