using System.Diagnostics;
using System.Diagnostics.Metrics;
using ChatStack.Contracts.Telemetry;

namespace ChatStack.ChatApi.Telemetry;

/// <summary>
/// The chat API's metrics: the GenAI client metrics of the conventions (names, units, buckets) and ChatStack's
/// own for budgets, limits and the outbox. Instruments are created once, per meter factory.
/// </summary>
internal sealed class ChatMetrics : IDisposable
{
    private readonly Meter _meter;
    private long _outboxDepth;
    private double _outboxOldestAge;
    private bool _outboxObserved;

    public ChatMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(ChatStackTelemetry.ChatApi);
        TokenUsage = _meter.CreateHistogram<long>(GenAiMetrics.TokenUsage, "{token}", "Number of input and output tokens used, per model call.", tags: null,
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = GenAiMetrics.TokenUsageBuckets });
        OperationDuration = _meter.CreateHistogram<double>(GenAiMetrics.OperationDuration, "s", "GenAI operation duration: one model call, start to last chunk.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GenAiMetrics.DurationBuckets });
        TimeToFirstChunk = _meter.CreateHistogram<double>(GenAiMetrics.TimeToFirstChunk, "s", "From issuing a streaming model call to its first chunk.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GenAiMetrics.DurationBuckets });
        BudgetRemaining = _meter.CreateHistogram<long>(ChatMetricNames.BudgetRemaining, "{token}", "Budget left when a run finalized: how close runs come to their budget_max.", tags: null,
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = GenAiMetrics.TokenUsageBuckets });
        BudgetExhaustions = _meter.CreateCounter<long>(ChatMetricNames.BudgetExhaustions, "{run}", "Runs stopped because their token budget ran out.");
        Summarizations = _meter.CreateCounter<long>(ChatMetricNames.Summarizations, "{summarization}", "Older history summarized to fit the context window.");
        RateLimitRejections = _meter.CreateCounter<long>(ChatMetricNames.RateLimitRejections, "{request}", "Chat requests refused with 429, by chatstack.limit.reason.");
        _meter.CreateObservableGauge(ChatMetricNames.OutboxDepth, ObserveDepth, "{record}", "Outbox records waiting for Pub/Sub, as the relay last read or counted them.");
        _meter.CreateObservableGauge(ChatMetricNames.OutboxOldestAge, ObserveAge, "s", "Age of the oldest outbox record waiting for Pub/Sub.");
    }

    public Histogram<long> TokenUsage { get; }

    public Histogram<double> OperationDuration { get; }

    public Histogram<double> TimeToFirstChunk { get; }

    public Histogram<long> BudgetRemaining { get; }

    public Counter<long> BudgetExhaustions { get; }

    public Counter<long> Summarizations { get; }

    public Counter<long> RateLimitRejections { get; }

    /// <summary>What the relay saw on its last look at the outbox.</summary>
    public void ObserveOutbox(long depth, TimeSpan oldestAge)
    {
        Volatile.Write(ref _outboxOldestAge, Math.Max(0, oldestAge.TotalSeconds));
        ObserveOutboxDepth(depth);
    }

    /// <summary>A fresh count of the outbox, taken beside delivery when more than a batch waits.</summary>
    public void ObserveOutboxDepth(long depth)
    {
        Volatile.Write(ref _outboxDepth, depth);
        Volatile.Write(ref _outboxObserved, true);
    }

    /// <summary>The common tags of the GenAI client metrics for one model call.</summary>
    public static TagList ModelCallTags(string provider, string requestModel, string? responseModel)
    {
        var tags = new TagList
        {
            { GenAiAttributes.OperationName, GenAiAttributes.Operations.Chat },
            { GenAiAttributes.ProviderName, provider },
            { GenAiAttributes.RequestModel, requestModel },
        };
        if (responseModel is not null)
        {
            tags.Add(GenAiAttributes.ResponseModel, responseModel);
        }

        return tags;
    }

    // Nothing is reported until the relay has looked once: a dual-write-off API has no outbox to report on.
    private IEnumerable<Measurement<long>> ObserveDepth() =>
        Volatile.Read(ref _outboxObserved) ? [new Measurement<long>(Volatile.Read(ref _outboxDepth))] : [];

    private IEnumerable<Measurement<double>> ObserveAge() =>
        Volatile.Read(ref _outboxObserved) ? [new Measurement<double>(Volatile.Read(ref _outboxOldestAge))] : [];

    public void Dispose() => _meter.Dispose();
}

/// <summary>ChatStack's own chat API metric names.</summary>
internal static class ChatMetricNames
{
    public const string BudgetRemaining = "chatstack.budget.remaining";
    public const string BudgetExhaustions = "chatstack.budget.exhaustions";
    public const string Summarizations = "chatstack.summarizations";
    public const string RateLimitRejections = "chatstack.rate_limit.rejections";
    public const string OutboxDepth = "chatstack.outbox.depth";
    public const string OutboxOldestAge = "chatstack.outbox.oldest_age";

    /// <summary>Tag of <see cref="RateLimitRejections"/>: <c>rate-limited</c> or <c>quota-exhausted</c>.</summary>
    public const string LimitReason = "chatstack.limit.reason";
}
