using ChatStack.AnalyticsWorker.Ingestion;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;

namespace Microsoft.Extensions.Hosting;

internal static class IngestionExtensions
{
    /// <summary>Pub/Sub in, BigQuery out, with the worker's telemetry.</summary>
    public static IHostApplicationBuilder AddChatEventIngestion(this IHostApplicationBuilder builder)
    {
        builder.AddPubSubClients();
        builder.AddBigQueryClient();
        builder.Services.AddOptions<IngestionOptions>().BindConfiguration("Ingestion");
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<IngestionTelemetry>();
        builder.Services.AddSingleton<SubscriptionSource>();
        builder.Services.AddSingleton<IngestionHealth>();
        builder.Services.AddHealthChecks().AddCheck<IngestionHealth>("bigquery-writes");
        // ENABLE_DUAL_WRITE (master) and ENABLE_BQ_WRITE: with either off the worker leaves the subscription alone, so
        // events wait there (7 days' retention) instead of being consumed and dropped.
        if (builder.Configuration.GetValue("ENABLE_DUAL_WRITE", true) && builder.Configuration.GetValue("ENABLE_BQ_WRITE", true))
        {
            builder.Services.AddHostedService<ChatEventIngestionService>();
        }
        else
        {
            builder.Services.AddHostedService<IngestionDisabledNotice>();
        }
        return builder;
    }
}

/// <summary>Says once, at start, that the warehouse path is off.</summary>
internal sealed class IngestionDisabledNotice(IConfiguration configuration, ILogger<IngestionDisabledNotice> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogWarning("BigQuery writes are off (ENABLE_DUAL_WRITE={DualWrite}, ENABLE_BQ_WRITE={BqWrite}): the worker does not pull, and chat events wait in their subscription",
            configuration["ENABLE_DUAL_WRITE"] ?? "true", configuration["ENABLE_BQ_WRITE"] ?? "true");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
