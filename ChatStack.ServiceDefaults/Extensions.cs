using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every ChatStack service shares: OpenTelemetry over OTLP, health checks, service discovery and HTTP
/// resilience. Web services call <see cref="AddServiceDefaults"/> and <see cref="MapDefaultEndpoints"/>;
/// workers and console apps call <see cref="AddBasicServiceDefaults"/>.
/// </summary>
public static class Extensions
{
    /// <summary>Tag of the health checks that say a service is alive (its process answers), not that its dependencies are up.</summary>
    public const string LiveTag = "live";

    /// <summary>Everything a web service needs: telemetry, health checks, discovery and resilient HTTP clients.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.AddBasicServiceDefaults();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>Telemetry and health checks, without the HTTP client parts: for workers and console apps.</summary>
    public static TBuilder AddBasicServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.ConfigureGracefulShutdown();
        return builder;
    }

    /// <summary>Traces, metrics and logs, exported over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (Aspire sets it).</summary>
    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddMeter(ChatStack.Contracts.Telemetry.ChatStackTelemetry.Meters)
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation())
            .WithTracing(tracing => tracing
                .AddSource(ChatStack.Contracts.Telemetry.ChatStackTelemetry.Sources)
                .AddAspNetCoreInstrumentation(options =>
                    // Health probes every few seconds would drown the traces that matter.
                    options.Filter = context => !IsHealthPath(context.Request.Path))
                .AddGrpcClientInstrumentation()
                .AddHttpClientInstrumentation());

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>A liveness check every service has; readiness checks of dependencies are added by each capability.</summary>
    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);
        return builder;
    }

    /// <summary>
    /// <c>/health</c> (ready: every check passes) and <c>/alive</c> (live checks only). Mapped in every
    /// environment: the AppHost and Cloud Run both probe them, and they reveal nothing but status unless
    /// <see cref="HealthResponse.IncludeDescriptionsKey"/> is set, as the AppHost sets it on the local stack.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapHealthChecks("/health", app.Configuration.GetValue<bool>(HealthResponse.IncludeDescriptionsKey)
            ? new HealthCheckOptions { ResponseWriter = HealthResponse.WriteWithDescriptions }
            : new HealthCheckOptions());
        app.MapHealthChecks("/alive", new HealthCheckOptions { Predicate = registration => registration.Tags.Contains(LiveTag) });
        return app;
    }

    private static bool IsHealthPath(PathString path) =>
        path.StartsWithSegments("/health") || path.StartsWithSegments("/alive");
}
