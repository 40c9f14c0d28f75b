namespace ChatStack.Tests.Support;

/// <summary>
/// Arguments for an AppHost that tests or benchmarks start beside a developer's own stack: ports of its own (the
/// AppHost refuses to start on ports in use), the emulators' data in memory (the developer's BigQuery emulator holds
/// the data file of this checkout, and a test's documents are not a developer's), and the offline model whatever the developer's AppHost user secrets configure. A
/// file of its own, so the benchmarks can link it.
/// </summary>
public static class IsolatedAppHost
{
    /// <summary>The AppHost parameters that would put a real model on the local stack; an isolated AppHost blanks them.</summary>
    private static readonly string[] ModelParameters = ["openai-api-key", "openai-endpoint", "chat-model"];

    /// <summary>Configuration keys and values; as environment variables, <c>:</c> becomes <c>__</c>.</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> Settings =
    [
        new("GoogleCloud:Emulators:bigquery:InMemory", "true"),
        new("GoogleCloud:Emulators:firestore:DataPath", ""),
        .. ModelParameters.Select(p => KeyValuePair.Create($"Parameters:{p}", "")),
    ];

    public static readonly string[] Args =
    [
        "--ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://127.0.0.1:0", "--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://127.0.0.1:0",
        "--ASPNETCORE_URLS=http://127.0.0.1:0", .. Settings.Select(s => $"--{s.Key}={s.Value}"),
    ];
}
