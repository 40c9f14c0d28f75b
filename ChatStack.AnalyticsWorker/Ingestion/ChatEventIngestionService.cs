using System.Diagnostics;
using System.Globalization;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Contracts.Telemetry;
using ChatStack.GoogleCloud.BigQuery;
using Google.Cloud.PubSub.V1;
using Microsoft.Extensions.Options;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Lands chat events in BigQuery exactly once: batches pulled messages by table, writes them with insertAll
/// using each event's deterministic id as insertId, and acks a message only after BigQuery accepted its row.
/// Rows BigQuery rejects as invalid and messages that are not chat events are nacked, so after the
/// subscription's last delivery attempt Pub/Sub moves them to the dead-letter topic; neither stops the rest. A
/// write that fails as a whole is not the messages' fault, so it never spends their delivery attempts.
/// </summary>
public sealed class ChatEventIngestionService(
    SubscriptionSource source,
    IBigQueryClient bigQuery,
    IOptions<IngestionOptions> options,
    IngestionTelemetry telemetry,
    IngestionHealth health,
    TimeProvider time,
    ILogger<ChatEventIngestionService> logger) : BackgroundService
{
    private readonly IngestionOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("Writing {Subscription} into dataset {Dataset}", source.Subscription, _options.Dataset);
        // Cancelled on the way out whatever the reason, so a failure cannot leave the pull loops (and the wait for them) running.
        using var pull = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var pulling = source.RunAsync(pull.Token);
        var reader = source.Messages;
        var batch = new List<ReceivedMessage>(_options.BatchSize);
        var failed = false;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                using var window = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                window.CancelAfter(_options.BatchLatency);
                long bytes = 0;
                try
                {
                    // Bytes as well as rows: insertAll refuses a request over 10 MB. A batch may pass MaxBatchBytes by its
                    // last message; a request BigQuery still refuses is written in halves.
                    while (!IsFull(batch, bytes) && await reader.WaitToReadAsync(window.Token))
                    {
                        while (!IsFull(batch, bytes) && reader.TryRead(out var message))
                        {
                            batch.Add(message);
                            bytes += message.Message.Data.Length;
                        }
                    }
                }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                {
                    // The batch waited long enough.
                }

                await ProcessAsync(batch, stoppingToken);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // A bug, not an outage (those are retried where they happen): stop the host so the platform restarts the
            // worker, rather than keep a process that pulls but no longer writes.
            logger.LogCritical(e, "Ingestion stopped on an unexpected error; the worker exits");
            failed = true;
            throw;
        }
        finally
        {
            if (batch.Count > 0 && !failed)
            {
                // A batch already pulled is finished even while stopping, so its rows are written once and acked.
                await ProcessAsync(batch, stoppingToken);
                batch.Clear();
            }

            await pull.CancelAsync();
            await pulling;
            // Whatever was pulled but not processed goes straight back instead of waiting for its lease to run out.
            var leftovers = new List<ReceivedMessage>(batch);
            while (reader.TryRead(out var message))
            {
                leftovers.Add(message);
            }

            await source.NackAsync(leftovers, CancellationToken.None);
            logger.LogInformation("Stopped pulling {Subscription}; released {Count} unprocessed messages", source.Subscription, leftovers.Count);
        }
    }

    private bool IsFull(List<ReceivedMessage> batch, long bytes) => batch.Count >= _options.BatchSize || bytes >= _options.MaxBatchBytes;

    /// <summary>
    /// Writes one batch and settles every message in it. A write that fails as a whole is retried until it succeeds,
    /// so an outage or a missing grant holds messages instead of spending their delivery attempts; only
    /// <paramref name="stopping"/> ends the retries, and the messages are then handed back.
    /// </summary>
    internal async Task ProcessAsync(IReadOnlyList<ReceivedMessage> batch, CancellationToken stopping)
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
                var tableRows = rows.Select(r => r.Row).ToList();
                errors = await InsertAsync(table.Key, tableRows, stopping);
                if (errors is not null)
                {
                    errors = await AwaitSchemaAsync(table.Key, tableRows, errors, stopping);
                }

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
    /// Row index → error for rows BigQuery refused; null only when stopping interrupted a failing write (its messages
    /// are then nacked for redelivery). Every retry carries the same insertIds.
    /// </summary>
    private async Task<Dictionary<int, string>?> InsertAsync(string table, List<WarehouseRow> rows, CancellationToken stopping)
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
                // Not cancelled by stopping: a request in flight is finished, so its rows are acked rather than sent twice.
                // Bounded, though: a BigQuery that stops answering is an outage like any other, retried and reported.
                using var timeout = new CancellationTokenSource(_options.InsertTimeout, time);
                var response = await bigQuery.InsertAllAsync(_options.Dataset, table, request, timeout.Token);
                health.WriteSucceeded();
                return (response.InsertErrors ?? [])
                    .Where(e => e.Errors?.Any(x => x.Reason != "stopped") ?? false)
                    .ToDictionary(e => e.Index, e => string.Join("; ", e.Errors!.Select(x => $"{x.Reason} {x.Location}: {x.Message}")));
            }
            catch (BigQueryException e) when (e.Code is 400 or 413 && !e.IsTransient)
            {
                // The request itself is refused (too large, or a row that breaks it): halve it until the rows that
                // cannot be written are alone, and only those go toward the dead-letter topic.
                if (rows.Count == 1)
                {
                    return new() { [0] = $"{e.Reason ?? e.Code.ToString(CultureInfo.InvariantCulture)}: {e.Message}" };
                }

                logger.LogWarning("insertAll of {Count} rows into {Table} was refused ({Error}); writing it in halves", rows.Count, table, e.Message);
                var half = rows.Count / 2;
                var first = await InsertAsync(table, rows[..half], stopping);
                var second = await InsertAsync(table, rows[half..], stopping);
                return first is null || second is null ? null : first.Concat(second.Select(x => KeyValuePair.Create(x.Key + half, x.Value))).ToDictionary();
            }
            catch (Exception e)
            {
                // Anything else (a 5xx, a 403 or 404 until someone fixes a grant or provisions, a network or token
                // failure, an unreadable answer) is retried: the messages stay leased and pulling pauses once
                // MaxOutstandingMessages are held.
                health.WriteFailed(e.Message);
                var failing = health.FailingFor;
                var level = failing < _options.MaxInsertBackoff ? LogLevel.Warning : LogLevel.Error;
                logger.Log(level, "insertAll of {Count} rows into {Table} failed ({Error}); attempt {Attempt}, failing for {Failing:g}, next in {Delay} ms",
                    rows.Count, table, e.Message, attempt, failing, (int)delay.TotalMilliseconds);
                telemetry.InsertFailures.Add(1, new KeyValuePair<string, object?>("table", table));
                try
                {
                    await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)delay.TotalMilliseconds)), time, stopping);
                }
                catch (OperationCanceledException)
                {
                    logger.LogWarning("Stopping while insertAll into {Table} fails; {Count} messages are handed back for redelivery", table, rows.Count);
                    return null;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxInsertBackoff.Ticks));
            }
        }
    }

    /// <summary>
    /// Rows refused for a field the table does not have yet. Right after the provisioner adds a column, BigQuery's
    /// streaming path can go on seeing the old schema for a few minutes; those rows are tried again for
    /// <see cref="IngestionOptions.SchemaChangeWait"/> before they are nacked toward the dead-letter topic. Null when
    /// stopping interrupted a retry, as for <see cref="InsertAsync"/>.
    /// </summary>
    private async Task<Dictionary<int, string>?> AwaitSchemaAsync(string table, List<WarehouseRow> rows, Dictionary<int, string> errors, CancellationToken stopping)
    {
        var started = time.GetTimestamp();
        var delay = TimeSpan.FromSeconds(1);
        while (errors.Where(e => e.Value.Contains("no such field", StringComparison.OrdinalIgnoreCase)).Select(e => e.Key).ToList() is { Count: > 0 } waiting
               && time.GetElapsedTime(started) < _options.SchemaChangeWait)
        {
            logger.LogWarning("{Count} {Table} rows name a field the table does not have yet ({Error}); trying them again in {Delay} ms, for up to {Wait:g}",
                waiting.Count, table, errors[waiting[0]], (int)delay.TotalMilliseconds, _options.SchemaChangeWait);
            try
            {
                await Task.Delay(delay, time, stopping);
            }
            catch (OperationCanceledException)
            {
                return null;
            }

            var retried = await InsertAsync(table, waiting.Select(i => rows[i]).ToList(), stopping);
            if (retried is null)
            {
                return null;
            }

            for (var k = 0; k < waiting.Count; k++)
            {
                if (retried.TryGetValue(k, out var error))
                {
                    errors[waiting[k]] = error;
                }
                else
                {
                    errors.Remove(waiting[k]);
                }
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxInsertBackoff.Ticks));
        }

        return errors;
    }

    private Activity? StartBatchActivity(IReadOnlyList<ReceivedMessage> batch)
    {
        // One batch serves many chat turns: link each turn's trace rather than pick one parent.
        var links = batch
            .Select(ChatTurnSpans.ParentOf)
            .OfType<ActivityContext>()
            .Distinct()
            .Take(128)
            .Select(c => new ActivityLink(c))
            .ToList();
        return IngestionTelemetry.ActivitySource.StartActivity("process chat-events batch", ActivityKind.Consumer, parentContext: default,
            ChatTurnSpans.ProcessTags(source.Subscription, batch.Count), links);
    }
}
