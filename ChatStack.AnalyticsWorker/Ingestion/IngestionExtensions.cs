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
        builder.Services.AddHostedService<ChatEventIngestionService>();
        builder.Services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddSource(IngestionTelemetry.Name))
            .WithMetrics(metrics => metrics.AddMeter(IngestionTelemetry.Name));
        return builder;
    }
}
