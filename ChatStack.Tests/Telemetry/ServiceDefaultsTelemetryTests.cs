using System.Diagnostics;
using System.Diagnostics.Metrics;
using ChatStack.Contracts.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace ChatStack.Tests.Telemetry;

public class ServiceDefaultsTelemetryTests
{
    [Fact]
    public async Task Every_chatstack_source_and_meter_is_exported_by_the_service_defaults()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        var builder = Host.CreateApplicationBuilder();
        builder.AddBasicServiceDefaults();
        builder.Services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddInMemoryExporter(spans))
            .WithMetrics(m => m.AddInMemoryExporter(metrics));
        using var host = builder.Build();
        await host.StartAsync();

        foreach (var name in ChatStackTelemetry.Sources)
        {
            using var source = new ActivitySource(name);
            source.StartActivity("probe")?.Dispose();
        }

        var meters = ChatStackTelemetry.Meters.Select(name => new Meter(name)).ToList();
        foreach (var meter in meters)
        {
            meter.CreateCounter<long>("chatstack.probe").Add(1);
        }

        host.Services.GetRequiredService<MeterProvider>().ForceFlush();
        meters.ForEach(m => m.Dispose());

        host.Services.GetRequiredService<TracerProvider>().ForceFlush();
        await host.StopAsync();

        Assert.Equal(ChatStackTelemetry.Sources.Order(), spans.Select(s => s.Source.Name).Order());
        Assert.Equal(ChatStackTelemetry.Meters.Order(), metrics.Where(m => m.Name == "chatstack.probe").Select(m => m.MeterName).Distinct().Order());
    }
}
