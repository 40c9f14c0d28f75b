using System.Diagnostics;
using ChatStack.ChatApi.Telemetry;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Contracts.Telemetry;
using Google.Cloud.Firestore.V1;
using Grpc.Core;
using OpenTelemetry;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The cold path: publishes outbox records to Pub/Sub in batches and removes them once Pub/Sub accepted them.
/// Runs beside the chats, never in them: while Pub/Sub is down chats go on, the outbox grows, and it drains when
/// Pub/Sub is back, after an API restart too (the records live in Firestore). Delivery is at least once; the
/// warehouse de-duplicates on event id.
/// </summary>
internal sealed class OutboxRelay(FirestoreOutbox outbox, OutboxSignal signal, DualWriteOptions options, ILogger<OutboxRelay> logger,
    ChatMetrics metrics, TimeProvider time) : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Enabled)
        {
            logger.LogWarning("Dual write is off (ENABLE_DUAL_WRITE={DualWrite}, ENABLE_PUBSUB={PubSub}): chats are kept in Firestore only and no chat event reaches Pub/Sub or BigQuery",
                options.DualWrite, options.PubSub);
            return;
        }

        var backoff = Poll;
        var failing = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                IReadOnlyList<Document> pending;
                // The poll runs every second: untraced, or every idle second would be a trace of its own.
                using (SuppressInstrumentationScope.Begin())
                {
                    pending = await outbox.ReadAsync(options.BatchSize, stoppingToken);
                    var depth = pending.Count < options.BatchSize ? pending.Count : await outbox.CountAsync(stoppingToken);
                    metrics.ObserveOutbox(depth, pending.Count == 0 ? TimeSpan.Zero : time.GetUtcNow() - pending[0].Fields["created_at"].TimestampValue.ToDateTimeOffset());
                }

                if (pending.Count == 0)
                {
                    await signal.WaitAsync(Poll, stoppingToken);
                    continue;
                }

                await PublishAsync(pending, stoppingToken);
                if (pending.Count < options.BatchSize)
                {
                    metrics.ObserveOutbox(0, TimeSpan.Zero);
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
                    logger.LogWarning("Outbox relay cannot deliver ({Status}: {Detail}); chats go on and their events wait in the outbox",
                        e.StatusCode, e.Status.Detail);
                    failing = true;
                }

                await Task.Delay(backoff + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 250)), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// One <c>send chat-events</c> span per publish, a root of its own (it serves many chat turns) linked to the span
    /// that wrote each record, so a chat's trace and its delivery lead to each other.
    /// </summary>
    private async Task PublishAsync(IReadOnlyList<Document> pending, CancellationToken cancellationToken)
    {
        var links = pending
            .Select(d => d.Fields["attributes"].MapValue.Fields.TryGetValue(ChatEventMessages.TraceParentAttribute, out var tp)
                && ActivityContext.TryParse(tp.StringValue, null, out var context) ? context : default)
            .Where(c => c != default)
            .Distinct()
            .Take(128)
            .Select(c => new ActivityLink(c));
        using var span = ChatTelemetry.StartRoot($"send {ResourceNames.ChatEventsTopic}", ActivityKind.Producer, links);
        span?.SetTag(MessagingAttributes.System, MessagingAttributes.SystemPubSub);
        span?.SetTag(MessagingAttributes.DestinationName, ResourceNames.ChatEventsTopic);
        span?.SetTag(MessagingAttributes.OperationType, "send");
        span?.SetTag(MessagingAttributes.OperationName, "publish");
        span?.SetTag(MessagingAttributes.BatchMessageCount, pending.Count);
        try
        {
            await outbox.PublishAndRemoveAsync(pending, cancellationToken);
        }
        catch (Exception e)
        {
            span.SetError(e is RpcException rpc ? rpc.StatusCode.ToString() : e.GetType().FullName ?? e.GetType().Name, e.Message);
            throw;
        }
    }
}
