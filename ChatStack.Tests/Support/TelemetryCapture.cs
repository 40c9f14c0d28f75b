using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace ChatStack.Tests.Support;

/// <summary>Spans and metrics of an in-process host, through OpenTelemetry's in-memory exporters.</summary>
public sealed class TelemetryCapture
{
    /// <summary>A meter factory for code under test constructed by hand, outside a host.</summary>
    public static IMeterFactory MeterFactory { get; } = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();

    private readonly LockedList<Activity> _spans = new();
    private readonly LockedList<MetricSnapshot> _metrics = new();

    /// <summary>Adds the exporters to a host's OpenTelemetry set-up (the service defaults' sources and meters).</summary>
    public void AddTo(IHostApplicationBuilder builder) => builder.Services.AddOpenTelemetry()
        .WithTracing(tracing => tracing.AddInMemoryExporter(_spans))
        .WithMetrics(metrics => metrics.AddInMemoryExporter(_metrics));

    public IReadOnlyList<Activity> Spans
    {
        get { return _spans.Snapshot(); }
    }

    /// <summary>Collects the host's metrics now and returns every snapshot so far.</summary>
    public IReadOnlyList<MetricSnapshot> Metrics(IServiceProvider services)
    {
        services.GetRequiredService<MeterProvider>().ForceFlush();
        return _metrics.Snapshot();
    }

    /// <summary>Waits until a span matching <paramref name="predicate"/> has ended.</summary>
    public async Task<Activity> WaitForSpanAsync(Func<Activity, bool> predicate, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (Spans.FirstOrDefault(predicate) is { } span)
            {
                return span;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no matching span within {timeout.TotalSeconds} s; have: {string.Join(", ", Spans.Select(s => s.DisplayName).Distinct())}");
            await Task.Delay(100);
        }
    }

    /// <summary>The exporters add from whichever thread ends a span; the test reads from its own.</summary>
    private sealed class LockedList<T> : System.Collections.ObjectModel.Collection<T>
    {
        private readonly Lock _gate = new();

        public T[] Snapshot()
        {
            lock (_gate)
            {
                return [.. Items];
            }
        }

        protected override void InsertItem(int index, T item)
        {
            lock (_gate)
            {
                base.InsertItem(index, item);
            }
        }

        protected override void ClearItems()
        {
            lock (_gate)
            {
                base.ClearItems();
            }
        }
    }
}
