using Google.Apis.Auth.OAuth2;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ChatStack.GoogleCloud.BigQuery;

public static class BigQueryServiceCollectionExtensions
{
    /// <summary>Registers <see cref="IBigQueryClient"/> from BIGQUERY_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT.</summary>
    public static IHostApplicationBuilder AddBigQueryClient(this IHostApplicationBuilder builder, Action<BigQueryOptions>? configure = null)
    {
        builder.Services.AddBigQueryClient(builder.Configuration, configure);
        return builder;
    }

    public static IServiceCollection AddBigQueryClient(this IServiceCollection services, IConfiguration configuration, Action<BigQueryOptions>? configure = null)
    {
        services.AddOptions<BigQueryOptions>().Configure(options =>
        {
            // The same reading of the environment as the gRPC clients, so every client agrees on project and emulators.
            var cloud = GoogleCloudOptions.FromConfiguration(configuration);
            options.EmulatorHost = cloud.BigQueryEmulatorHost;
            options.ProjectId = cloud.ProjectId ?? options.ProjectId;
            configure?.Invoke(options);
        }).Validate(o => !string.IsNullOrWhiteSpace(o.ProjectId), "GOOGLE_CLOUD_PROJECT (BigQueryOptions.ProjectId) is required.");

        services.AddTransient<GoogleAuthHandler>();
        services.AddHttpClient<IBigQueryClient, BigQueryClient>((provider, http) =>
            {
                http.BaseAddress = provider.GetRequiredService<IOptions<BigQueryOptions>>().Value.BaseAddress;
                http.Timeout = TimeSpan.FromMinutes(5);
            })
            .AddHttpMessageHandler<GoogleAuthHandler>();
        return services;
    }
}

/// <summary>Adds an OAuth token from application default credentials, except against the emulator.</summary>
public sealed class GoogleAuthHandler(IOptions<BigQueryOptions> options) : DelegatingHandler
{
    private static readonly SemaphoreSlim Lock = new(1, 1);
    private static ITokenAccess? _credential;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!options.Value.UsesEmulator)
        {
            var credential = await CredentialAsync(cancellationToken);
            var token = await credential.GetAccessTokenForRequestAsync(request.RequestUri?.ToString(), cancellationToken);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }
        return await base.SendAsync(request, cancellationToken);
    }

    private static async Task<ITokenAccess> CredentialAsync(CancellationToken cancellationToken)
    {
        if (_credential is { } cached) return cached;
        await Lock.WaitAsync(cancellationToken);
        try
        {
            return _credential ??= await GoogleCloudCredentials.ApplicationDefaultAsync(cancellationToken);
        }
        finally
        {
            Lock.Release();
        }
    }
}
