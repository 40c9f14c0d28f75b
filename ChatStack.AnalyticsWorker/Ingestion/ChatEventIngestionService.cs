using System.Diagnostics;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud.BigQuery;
using Google.Cloud.PubSub.V1;
using Microsoft.Extensions.Options;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Lands chat events in BigQuery exactly once: batches pulled messages by table, writes them with insertAll
/// using each event's deterministic id as insertId, and acks a message only after BigQuery accepted its row.
/// Rows BigQuery rejects as invalid and messages that are not chat events are nacked, so after the
/// subscription's last delivery attempt Pub/Sub moves them to the dead-letter topic; neither stops the rest.
/// </summary>
public sealed class ChatEventIngestionService(
    SubscriptionSource source,
    IBigQueryClient bigQuery,
    IOptions<IngestionOptions> options,
    IngestionTelemetry telemetry,
    TimeProvider time,
    ILogger<ChatEventIngestionService> logger) : BackgroundService
{
    private readonly IngestionOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("Writing {Subscription} into dataset {Dataset}", source.Subscription, _options.Dataset);
        var pulling = source.RunAsync(stoppingToken);
        var reader = source.Messages;
        var batch = new List<ReceivedMessage>(_options.BatchSize);
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                using var window = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                window.CancelAfter(_options.BatchLatency);
                try
                {
                    while (batch.Count < _options.BatchSize && await reader.WaitToReadAsync(window.Token))
                    {
                        while (batch.Count < _options.BatchSize && reader.TryRead(out var message))
                        {
                            batch.Add(message);
                        }
                    }
                }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                {
                    // The batch waited long enough.
                }

                // A batch already pulled is finished even while stopping, so its rows are written once and acked.
                await ProcessAsync(batch, CancellationToken.None);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (batch.Count > 0)
            {
                await ProcessAsync(batch, CancellationToken.None);
            }

            await pulling;
            // Whatever was pulled but not processed goes straight back instead of waiting for its lease to run out.
            var leftovers = new List<ReceivedMessage>();
            while (reader.TryRead(out var message))
            {
                leftovers.Add(message);
            }

            await source.NackAsync(leftovers, CancellationToken.None);
            logger.LogInformation("Stopped pulling {Subscription}; released {Count} unprocessed messages", source.Subscription, leftovers.Count);
        }
    }

    /// <summary>Writes one batch and settles every message in it.</summary>
    internal async Task ProcessAsync(IReadOnlyList<ReceivedMessage> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

        using var activity = StartBatchActivity(batch);
        using var turns = ChatTurnSpans.Start(batch, activity, source.Subscription);
        var ingestedAt = time.GetUtcNow();
        var nacks = new List<ReceivedMessage>();
        var pending = new List<(ReceivedMessage Message, WarehouseRow Row)>(batch.Count);
        foreach (var message in batch)
        {
            if (ChatEventMessages.TryParse(message.Message.Data.Span, message.Message.Attributes, out var parsed, out var reason))
            {
                pending.Add((message, WarehouseRows.From(parsed, ingestedAt)));
            }
            else
            {
                telemetry.MalformedMessages.Add(1);
                logger.LogWarning("Message {MessageId} (delivery attempt {Attempt}) is not a storable chat event: {Reason}; nacked toward the dead-letter topic",
                    message.Message.MessageId, message.DeliveryAttempt, reason);
                nacks.Add(message);
            }
        }

        var acks = new List<ReceivedMessage>(batch.Count);
        foreach (var table in pending.GroupBy(p => p.Row.Table))
        {
            var rows = table.ToList();
            Dictionary<int, string>? errors;
            using (var inserts = turns.StartInsert(_options.Dataset, table.Key, rows.Select(r => r.Message).ToList()))
            {
                errors = await InsertAsync(table.Key, rows.Select(r => r.Row).ToList(), cancellationToken);
                if (errors is null)
                {
                    inserts.Fail("insert_failed");
                }
            }

            if (errors is null)
            {
                nacks.AddRange(rows.Select(r => r.Message));
                continue;
            }

            for (var i = 0; i < rows.Count; i++)
            {
                if (errors.TryGetValue(i, out var error))
                {
                    logger.LogWarning("BigQuery rejected the {Table} row of message {MessageId}: {Error}", table.Key, rows[i].Message.Message.MessageId, error);
                    nacks.Add(rows[i].Message);
                }
                else
                {
                    acks.Add(rows[i].Message);
                    var accepted = time.GetUtcNow();
                    telemetry.EventLag.Record((accepted - rows[i].Row.EventTimestamp).TotalSeconds);
                    if (rows[i].Message.Message.PublishTime is { } published)
                    {
                        telemetry.IngestionLag.Record((accepted - published.ToDateTimeOffset()).TotalSeconds);
                    }
                }
            }

            telemetry.RowsWritten.Add(rows.Count - errors.Count, new KeyValuePair<string, object?>("table", table.Key));
            telemetry.InsertErrors.Add(errors.Count, new KeyValuePair<string, object?>("table", table.Key));
        }

        await source.AckAsync(acks, CancellationToken.None);
        await source.NackAsync(nacks, CancellationToken.None);
        turns.Settle(acks, nacks);
        var lastAttempts = nacks.Count(m => m.DeliveryAttempt >= ResourceNames.MaxDeliveryAttempts);
        if (lastAttempts > 0)
        {
            telemetry.DeadLettered.Add(lastAttempts);
        }

        activity?.SetTag("chatstack.worker.acked", acks.Count);
        activity?.SetTag("chatstack.worker.nacked", nacks.Count);
    }

    /// <summary>
    /// Row index → error for rows BigQuery refused; null when the whole request kept failing (every message is then
    /// nacked for redelivery). Transient failures are retried with backoff and jitter, always with the same insertIds.
    /// </summary>
    private async Task<Dictionary<int, string>?> InsertAsync(string table, List<WarehouseRow> rows, CancellationToken cancellationToken)
    {
        var request = new InsertAllRequest
        {
            SkipInvalidRows = true,
            Rows = [.. rows.Select(r => new InsertAllRow { InsertId = r.InsertId, Json = r.Json })],
        };
        var delay = TimeSpan.FromMilliseconds(500);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var response = await bigQuery.InsertAllAsync(_options.Dataset, table, request, cancellationToken);
                return (response.InsertErrors ?? [])
                    .Where(e => e.Errors?.Any(x => x.Reason != "stopped") ?? false)
                    .ToDictionary(e => e.Index, e => string.Join("; ", e.Errors!.Select(x => $"{x.Reason} {x.Location}: {x.Message}")));
            }
            catch (Exception e) when (e is BigQueryException { IsTransient: true } or HttpRequestException or TaskCanceledException
                                      && attempt < _options.MaxInsertAttempts && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("insertAll of {Count} rows into {Table} failed ({Error}); attempt {Attempt} of {Max} in {Delay} ms",
                    rows.Count, table, e.Message, attempt, _options.MaxInsertAttempts, (int)delay.TotalMilliseconds);
                await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)delay.TotalMilliseconds)), cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(20).Ticks));
            }
            catch (Exception e) when (e is BigQueryException or HttpRequestException or TaskCanceledException)
            {
                logger.LogError(e, "insertAll of {Count} rows into {Table} failed; their messages are nacked for redelivery", rows.Count, table);
                return null;
            }
        }
    }

    private static Activity? StartBatchActivity(IReadOnlyList<ReceivedMessage> batch)
    {
        // One batch serves many chat turns: link each turn's trace rather than pick one parent.
        var links = batch
            .Select(ChatTurnSpans.ParentOf)
            .OfType<ActivityContext>()
            .Distinct()
            .Take(128)
            .Select(c => new ActivityLink(c))
            .ToList();
        var activity = IngestionTelemetry.ActivitySource.StartActivity("process chat-events batch", ActivityKind.Consumer, parentContext: default, links: links);
        activity?.SetTag("messaging.system", "gcp_pubsub");
        activity?.SetTag("messaging.operation.type", "process");
        activity?.SetTag("messaging.batch.message_count", batch.Count);
        return activity;
    }
}
