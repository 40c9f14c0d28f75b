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

    /// <summary>How long shutdown waits for an in-memory outbox to drain; a durable one keeps its records.</summary>
    internal static readonly TimeSpan DrainOnStop = TimeSpan.FromSeconds(5);

    private string _step = ""; // what the batch in hand is doing, for the outage warning

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = Poll;
        var failing = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await RelayBatchAsync(stoppingToken) == 0)
                {
                    await signal.WaitAsync(Poll, stoppingToken);
                    continue;
                }

                if (failing)
                {
                    logger.LogInformation("Outbox relay delivering again");
                    failing = false;
                }

                backoff = Poll;
            }
            catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
            {
                // Logged once per outage, not once per retry.
                if (!failing)
                {
                    // Which service failed decides what else is down: without Pub/Sub chats go on, without Firestore
                    // they get 503s too.
                    logger.LogWarning("Outbox relay cannot deliver: {Step} failed ({Status}: {Detail}); it retries with backoff, and the events wait in the outbox",
                        _step, e.StatusCode, string.IsNullOrEmpty(e.Status.Detail) ? "no detail" : e.Status.Detail);
                    failing = true;
                }

                await Task.Delay(backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 250)), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
            catch (Exception e) when (stoppingToken.IsCancellationRequested && e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
            {
                // A gRPC call cut short by the stop ends in RpcException(Cancelled), not OperationCanceledException.
                break;
            }
        }

        if (!outbox.Durable)
        {
            await DrainAsync();
        }
    }

    private async Task<int> RelayBatchAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<OutboxRecord> pending;
        // The poll runs every second: untraced, or every idle second would be a trace of its own.
        using (SuppressInstrumentationScope.Begin())
        {
            _step = "reading the outbox (Firestore)";
            pending = await outbox.ReadAsync(options.BatchSize, cancellationToken);
            var depth = pending.Count < options.BatchSize ? pending.Count : await outbox.CountAsync(cancellationToken);
            metrics.ObserveOutbox(depth, pending.Count == 0 ? TimeSpan.Zero : time.GetUtcNow() - pending[0].CreatedAt);
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
        using var span = ChatTelemetry.StartRoot($"send {ResourceNames.ChatEventsTopic}", ActivityKind.Producer, links);
        span?.SetTag(MessagingAttributes.System, MessagingAttributes.SystemPubSub);
        span?.SetTag(MessagingAttributes.DestinationName, ResourceNames.ChatEventsTopic);
        span?.SetTag(MessagingAttributes.OperationType, "send");
        span?.SetTag(MessagingAttributes.OperationName, "send"); // the GCP Pub/Sub conventions' name for a publish
        span?.SetTag(MessagingAttributes.BatchMessageCount, pending.Count);
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

    /// <summary>Events kept only in memory get one last, bounded chance to reach Pub/Sub before the process ends.</summary>
    private async Task DrainAsync()
    {
        using var timeout = new CancellationTokenSource(DrainOnStop);
        try
        {
            while (await RelayBatchAsync(timeout.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            var left = await outbox.CountAsync(CancellationToken.None);
            logger.LogError("Stopping with {Count} chat events not delivered to Pub/Sub; ENABLE_FIRESTORE_WRITE=false keeps them in memory only", left);
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
