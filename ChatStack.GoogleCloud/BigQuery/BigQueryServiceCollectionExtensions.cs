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

        services.AddHttpClient<IBigQueryClient, BigQueryClient>((provider, http) =>
            {
                http.BaseAddress = provider.GetRequiredService<IOptions<BigQueryOptions>>().Value.BaseAddress;
                http.Timeout = TimeSpan.FromMinutes(5);
            })
            .AddHttpMessageHandler(provider => new GoogleAuthHandler(!provider.GetRequiredService<IOptions<BigQueryOptions>>().Value.UsesEmulator));
        return services;
    }
}
