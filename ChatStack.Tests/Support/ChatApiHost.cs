using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace ChatStack.Tests.Support;

/// <summary>
/// The chat API on real Kestrel at 127.0.0.1:0 in this process, with settings a test chooses (a tiny rate
/// limit, an unreachable Firestore, an OpenAI-compatible test server), wired exactly as Program.cs wires it.
/// </summary>
public sealed class ChatApiHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ChatApiHost(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public IServiceProvider Services => _app.Services;

    public HttpClient CreateClient() => new() { BaseAddress = Address, Timeout = TimeSpan.FromMinutes(2) };

    /// <summary>The chat page's files in the source tree, for a host that should serve them.</summary>
    public static string PageRoot => Path.Combine(Path.GetDirectoryName(Projects.ChatStack_AppHost.ProjectPath.TrimEnd(Path.DirectorySeparatorChar))!, "ChatStack.ChatApi", "wwwroot");

    /// <summary>
    /// The offline model at full speed on the Firestore emulator at <paramref name="firestoreHost"/>, its store wrapped
    /// in an <see cref="ObservedStore"/> that the test can watch and steer.
    /// </summary>
    internal static async Task<(ChatApiHost Host, ObservedStore Store)> StartObservedAsync(string firestoreHost)
    {
        var host = await StartAsync(firestoreHost, new Dictionary<string, string?> { ["Chat:Offline:DeltaDelayMs"] = "0" },
            configure: builder => builder.Services.Replace(ServiceDescriptor.Singleton<IChatSessionStore>(sp =>
                new ObservedStore(ActivatorUtilities.CreateInstance<FirestoreChatSessionStore>(sp)))));
        return (host, (ObservedStore)host.Services.GetRequiredService<IChatSessionStore>());
    }

    /// <summary>
    /// The offline model at full speed on the Firestore emulator at <paramref name="firestoreHost"/>, every Firestore
    /// call passing <paramref name="faults"/> on its way, where the test makes Firestore fail as it does in production.
    /// </summary>
    /// <param name="settings">Configuration on top, read at start-up as the app's own (e.g. <c>Limits:RequestsPerWindow</c>).</param>
    internal static Task<ChatApiHost> StartWithFaultsAsync(string firestoreHost, FirestoreFaults faults, Action<WebApplicationBuilder>? configure = null,
        IDictionary<string, string?>? settings = null) =>
        StartAsync(firestoreHost, new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>()) { ["Chat:Offline:DeltaDelayMs"] = "0" }, configure: builder =>
        {
            builder.Services.Replace(ServiceDescriptor.Singleton(_ => new Firestore.FirestoreClient(
                GoogleCloudChannels.Create(firestoreHost, GoogleCloudChannels.FirestoreEndpoint).Intercept(faults))));
            configure?.Invoke(builder);
        });

    /// <summary>
    /// The offline model at full speed on the Firestore emulator at <paramref name="firestoreHost"/>, or, without
    /// <paramref name="firestore"/>, with the in-memory store and nothing listening where Firestore would be.
    /// </summary>
    public static Task<ChatApiHost> StartOnStoreAsync(bool firestore, string firestoreHost, int deltaDelayMs = 0) => firestore
        ? StartAsync(firestoreHost, new Dictionary<string, string?> { ["Chat:Offline:DeltaDelayMs"] = $"{deltaDelayMs}" })
        : StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["Chat:Offline:DeltaDelayMs"] = $"{deltaDelayMs}",
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_PUBSUB"] = "false",
        });

    public static async Task<ChatApiHost> StartAsync(string firestoreHost, IDictionary<string, string?> settings, string environment = "Development", string? webRoot = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = environment,
            ApplicationName = "ChatStack.ChatApi",
            ContentRootPath = AppContext.BaseDirectory,
            WebRootPath = webRoot,
        });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["GOOGLE_CLOUD_PROJECT"] = $"chat-tests-{Guid.NewGuid():N}"[..24],
            ["FIRESTORE_EMULATOR_HOST"] = firestoreHost,
            ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:1",
            ["Logging:LogLevel:Default"] = "Warning",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "",
        });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddServiceDefaults();
        builder.AddChatApi();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapChatApi();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ChatApiHost(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
