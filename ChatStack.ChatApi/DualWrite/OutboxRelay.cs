using System.Diagnostics;
using ChatStack.ChatApi.Telemetry;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Contracts.Telemetry;
using Grpc.Core;
using OpenTelemetry;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The cold path: publishes outbox records to Pub/Sub in batches and removes them once Pub/Sub accepted them.
/// Runs beside the chats, never in them: while Pub/Sub is down chats go on, the outbox grows, and it drains when
/// Pub/Sub is back, after an API restart too when the records live in Firestore. Delivery is at least once; the
/// warehouse de-duplicates on event id.
/// </summary>
internal sealed class OutboxRelay(IOutboxStore outbox, ChatEventPublisher publisher, OutboxSignal signal, DualWriteOptions options,
    ILogger<OutboxRelay> logger, ChatMetrics metrics, TimeProvider time) : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>How often, at most, the outbox is counted while more than a batch waits.</summary>
    private static readonly TimeSpan CountEvery = TimeSpan.FromSeconds(15);

    /// <summary>How long shutdown waits for an in-memory outbox to drain; a durable one keeps its records.</summary>
    internal static readonly TimeSpan DrainOnStop = TimeSpan.FromSeconds(5);

    private string _step = ""; // what the batch in hand is doing, for the outage warning

    // The depth count runs beside delivery, never in its way (see StartCount).
    private Task _counting = Task.CompletedTask;
    private long? _countStartedAt;
    private long _counted;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = Poll;
        string? failing = null; // the kind of failure last logged, so an outage is logged once, not once per retry
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await RelayBatchAsync(stoppingToken) == 0)
                {
                    await signal.WaitAsync(Poll, stoppingToken);
                    continue;
                }

                if (failing is not null)
                {
                    logger.LogInformation("Outbox relay delivering again");
                    failing = null;
                }

                backoff = Poll;
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                // Whatever the stop cut short ends in (OperationCanceledException, RpcException(Cancelled), or a
                // failure already on its way back), it is a stop: pending records wait for the drain below.
                break;
            }
            catch (Exception e)
            {
                // Any failure, not only Google's, is retried: an exception escaping here would stop the API.
                var kind = e is RpcException ? nameof(RpcException) : e.GetType().FullName;
                if (failing != kind)
                {
                    if (e is RpcException rpc)
                    {
                        // Which service failed decides what else is down: without Pub/Sub chats go on, without
                        // Firestore they get 503s too.
                        logger.LogWarning("Outbox relay cannot deliver: {Step} failed ({Status}: {Detail}); it retries with backoff, and the events wait in the outbox",
                            _step, rpc.StatusCode, string.IsNullOrEmpty(rpc.Status.Detail) ? "no detail" : rpc.Status.Detail);
                    }
                    else
                    {
                        logger.LogError(e, "Outbox relay failed unexpectedly while {Step}; it retries with backoff, and the events wait in the outbox", _step);
                    }

                    failing = kind;
                }

                await Task.Delay(backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 250)), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }

        if (!outbox.Durable)
        {
            await DrainAsync();
        }

        await _counting; // never throws
    }

    private async Task<int> RelayBatchAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<OutboxRecord> pending;
        // The poll runs every second: untraced, or every idle second would be a trace of its own.
        using (SuppressInstrumentationScope.Begin())
        {
            _step = "reading the outbox (Firestore)";
            pending = await outbox.ReadAsync(options.BatchSize, cancellationToken);
            var age = pending.Count == 0 ? TimeSpan.Zero : time.GetUtcNow() - pending[0].CreatedAt;
            if (pending.Count < options.BatchSize)
            {
                metrics.ObserveOutbox(pending.Count, age); // everything waiting is in hand
            }
            else
            {
                // More may wait: the last count (at least this batch) now, a fresh count beside the publish.
                metrics.ObserveOutbox(Math.Max(Interlocked.Read(ref _counted), pending.Count), age);
                StartCount(cancellationToken);
            }
        }

        if (pending.Count > 0)
        {
            await PublishAsync(pending, cancellationToken);
            if (pending.Count < options.BatchSize)
            {
                metrics.ObserveOutbox(0, TimeSpan.Zero);
            }
        }

        return pending.Count;
    }

    /// <summary>
    /// Counts the outbox for the depth gauge, off the delivery path: during the backlog an outage leaves, a count is
    /// slowest (or misses its deadline), and delivery must not wait for it or fail with it. One at a time, at most
    /// every <see cref="CountEvery"/>; a failed count keeps the last value.
    /// </summary>
    private void StartCount(CancellationToken cancellationToken)
    {
        if (!_counting.IsCompleted || (_countStartedAt is { } started && time.GetElapsedTime(started) < CountEvery))
        {
            return;
        }

        _countStartedAt = time.GetTimestamp();
        _counting = Task.Run(async () =>
        {
            try
            {
                var depth = await outbox.CountAsync(cancellationToken);
                Interlocked.Exchange(ref _counted, depth);
                metrics.ObserveOutboxDepth(depth);
            }
            catch (Exception e)
            {
                logger.LogDebug("Counting the outbox failed ({Error}); the depth gauge keeps its last value",
                    e is RpcException rpc ? rpc.StatusCode.ToString() : e.GetType().Name);
            }
        }, CancellationToken.None);
    }

    /// <summary>
    /// One <c>send chat-events</c> span per publish, a root of its own (it serves many chat turns) linked to the span
    /// that wrote each record, so a chat's trace and its delivery lead to each other.
    /// </summary>
    private async Task PublishAsync(IReadOnlyList<OutboxRecord> pending, CancellationToken cancellationToken)
    {
        var links = pending
            .Select(r => r.Attributes.TryGetValue(ChatEventMessages.TraceParentAttribute, out var tp)
                && ActivityContext.TryParse(tp, null, out var context) ? context : default)
            .Where(c => c != default)
            .Distinct()
            .Take(128)
            .Select(c => new ActivityLink(c));
        // Given at start, so samplers see them; "send" is the GCP Pub/Sub conventions' name for a publish.
        using var span = ChatTelemetry.StartRoot($"send {ResourceNames.ChatEventsTopic}", ActivityKind.Producer, links,
        [
            new(MessagingAttributes.System, MessagingAttributes.SystemPubSub),
            new(MessagingAttributes.DestinationName, ResourceNames.ChatEventsTopic),
            new(MessagingAttributes.OperationType, "send"),
            new(MessagingAttributes.OperationName, "send"),
            new(MessagingAttributes.BatchMessageCount, pending.Count),
        ]);
        try
        {
            _step = $"publishing to {ResourceNames.ChatEventsTopic} (Pub/Sub)";
            await publisher.PublishAsync(pending, cancellationToken);
            _step = "removing delivered records from the outbox (Firestore)";
            await outbox.RemoveAsync(pending, cancellationToken);
        }
        catch (Exception e)
        {
            span.SetError(e is RpcException rpc ? rpc.StatusCode.ToString() : e.GetType().FullName ?? e.GetType().Name, e.Message);
            throw;
        }
    }

    /// <summary>
    /// Events kept only in memory get one last, bounded chance to reach Pub/Sub before the process ends. A failed
    /// attempt is retried within that time: one transient UNAVAILABLE must not cost the rest of the drain.
    /// </summary>
    private async Task DrainAsync()
    {
        using var timeout = new CancellationTokenSource(DrainOnStop);
        var backoff = TimeSpan.FromMilliseconds(100);
        string? lastError = null;
        while (!timeout.IsCancellationRequested)
        {
            try
            {
                if (await RelayBatchAsync(timeout.Token) == 0)
                {
                    return;
                }

                backoff = TimeSpan.FromMilliseconds(100);
            }
            catch (Exception e)
            {
                lastError = e is RpcException rpc ? rpc.StatusCode.ToString() : e.GetType().Name;
                await Task.Delay(backoff, timeout.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }
        }

        var left = await outbox.CountAsync(CancellationToken.None);
        if (left > 0)
        {
            logger.LogError("Stopping with {Count} chat events not delivered to Pub/Sub ({LastError}); ENABLE_FIRESTORE_WRITE=false keeps them in memory only",
                left, lastError ?? "out of time");
        }
    }
}

/// <summary>Says once, at start, which storage paths are off and what that means for a chat.</summary>
internal sealed class StoragePathsNotice(DualWriteOptions options, ILogger<StoragePathsNotice> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.FirestoreWrite)
        {
            logger.LogWarning("Firestore writes are off (ENABLE_FIRESTORE_WRITE=false): sessions and their history live in this process's memory and are gone when it stops");
        }

        if (!options.Enabled)
        {
            logger.LogWarning("Dual write is off (ENABLE_DUAL_WRITE={DualWrite}, ENABLE_PUBSUB={PubSub}): no chat event reaches Pub/Sub or BigQuery",
                options.DualWrite, options.PubSub);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
