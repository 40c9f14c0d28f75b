using Grpc.Core;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The cold path: publishes outbox records to Pub/Sub in batches and removes them once Pub/Sub accepted them.
/// Runs beside the chats, never in them: while Pub/Sub is down chats go on, the outbox grows, and it drains when
/// Pub/Sub is back, after an API restart too (the records live in Firestore). Delivery is at least once; the
/// warehouse de-duplicates on event id.
/// </summary>
internal sealed class OutboxRelay(FirestoreOutbox outbox, OutboxSignal signal, DualWriteOptions options, ILogger<OutboxRelay> logger) : BackgroundService
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
                var pending = await outbox.ReadAsync(options.BatchSize, stoppingToken);
                if (pending.Count == 0)
                {
                    await signal.WaitAsync(Poll, stoppingToken);
                    continue;
                }

                await outbox.PublishAndRemoveAsync(pending, stoppingToken);
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
}
