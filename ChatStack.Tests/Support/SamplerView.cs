using System.Collections.Concurrent;
using System.Diagnostics;

namespace ChatStack.Tests.Support;

/// <summary>
/// What a sampler sees of each span an <see cref="ActivitySource"/> starts: its name, trace, links and the attributes
/// given at creation (not those set afterwards). Only watches: the host's own sampler still decides.
/// </summary>
public sealed class SamplerView : IDisposable
{
    private readonly ConcurrentQueue<Creation> _creations = new();
    private readonly ActivityListener _listener;

    public SamplerView(string sourceName)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == sourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
            {
                _creations.Enqueue(new Creation(
                    options.Name,
                    options.TraceId,
                    [.. options.Links?.Select(l => l.Context.TraceId) ?? []],
                    (options.Tags ?? []).ToDictionary(t => t.Key, t => t.Value)));
                return ActivitySamplingResult.None;
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Creation> Creations => [.. _creations];

    public void Dispose() => _listener.Dispose();

    public sealed record Creation(string Name, ActivityTraceId TraceId, IReadOnlyList<ActivityTraceId> LinkedTraces, IReadOnlyDictionary<string, object?> Tags)
    {
        /// <summary>Started in <paramref name="traceId"/>, or linked to it (a batch span is a root of its own).</summary>
        public bool Concerns(ActivityTraceId traceId) => TraceId == traceId || LinkedTraces.Contains(traceId);
    }
}
