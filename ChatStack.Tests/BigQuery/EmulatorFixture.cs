using ChatStack.BigQueryEmulator;
using ChatStack.GoogleCloud.BigQuery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.BigQuery;

/// <summary>The emulator on Kestrel at a free loopback port (real HTTP), driven through the project's own client.</summary>
public sealed class EmulatorFixture : IAsyncLifetime
{
    public const string Project = "chatstack-test";

    private WebApplication? _app;

    public Uri BaseAddress { get; private set; } = null!;

    public string HostAndPort => $"{BaseAddress.Host}:{BaseAddress.Port}";

    public IServiceProvider Services => _app!.Services;

    public static async Task<WebApplication> StartAsync(params string[] extraArgs)
    {
        string[] args = ["--urls", "http://127.0.0.1:0", .. extraArgs];
        var app = EmulatorApp.Create(args, builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        await app.StartAsync();
        return app;
    }

    public static Uri AddressOf(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    public async Task InitializeAsync()
    {
        _app = await StartAsync("--BigQueryEmulator:InMemory=true");
        BaseAddress = AddressOf(_app);
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    public BigQueryClient CreateClient(HttpMessageHandler? handler = null, int maxAttempts = 4)
    {
        var options = new BigQueryOptions { ProjectId = Project, EmulatorHost = HostAndPort, MaxAttempts = maxAttempts, InitialBackoff = TimeSpan.FromMilliseconds(10) };
        var http = handler is null ? new HttpClient() : new HttpClient(handler);
        http.BaseAddress = options.BaseAddress;
        return new BigQueryClient(http, Options.Create(options));
    }

    public HttpClient CreateRawClient() => new() { BaseAddress = BaseAddress };

    public static string NewDatasetId() => "ds_" + Guid.NewGuid().ToString("N")[..12];
}

[CollectionDefinition(Name)]
public sealed class EmulatorCollection : ICollectionFixture<EmulatorFixture>
{
    public const string Name = "BigQuery emulator";
}
