using System.Diagnostics;
using ChatStack.Contracts;
using ChatStack.Contracts.Events;
using ChatStack.Contracts.Telemetry;
using Google.Cloud.PubSub.V1;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Continues each chat turn's trace into the worker. A batch serves many turns, so the batch span stays a root
/// of its own (linked to every turn); each turn in the batch gets a <c>process chat-events</c> span whose parent is
/// the <c>traceparent</c> its messages carry, and under it an <c>insertAll {table}</c> span for the insertAll that
/// wrote its rows (the real HTTP call sits under the batch span; this one times the same call and links to it).
/// The dashboard then shows API → Pub/Sub → worker → BigQuery as one trace. Cost: at most one process span per
/// distinct turn in the batch plus one insertAll span per turn and table — linear in the batch, ≤ 3 per message,
/// and nothing for messages whose turn was not sampled.
/// </summary>
internal sealed class ChatTurnSpans : IDisposable
{
    private readonly Dictionary<ActivityTraceId, Turn> _turns = [];
    private readonly Activity? _batch;

    private ChatTurnSpans(Activity? batch) => _batch = batch;

    public static ChatTurnSpans Start(IReadOnlyList<ReceivedMessage> batch, Activity? batchSpan, string subscription)
    {
        var spans = new ChatTurnSpans(batchSpan);
        var groups = new Dictionary<ActivityTraceId, (ActivityContext Parent, List<ReceivedMessage> Messages)>();
        foreach (var message in batch)
        {
            if (ParentOf(message) is { } parent)
            {
                if (!groups.TryGetValue(parent.TraceId, out var group))
                {
                    groups[parent.TraceId] = group = (parent, []);
                }

                group.Messages.Add(message);
            }
        }

        var links = batchSpan is null ? null : new[] { new ActivityLink(batchSpan.Context) };
        foreach (var (traceId, (parent, messages)) in groups)
        {
            var tags = ProcessTags(subscription, messages.Count);
            tags.Add(new("chatstack.worker.event_types", string.Join(',', messages
                .Select(m => m.Message.Attributes.TryGetValue(ChatEventMessages.EventTypeAttribute, out var type) ? type : "unknown").Distinct())));
            if (messages.Count == 1)
            {
                tags.Add(new(MessagingAttributes.MessageId, messages[0].Message.MessageId));
                tags.Add(new(MessagingAttributes.DeliveryAttempt, messages[0].DeliveryAttempt));
            }

            var span = IngestionTelemetry.ActivitySource.StartActivity($"process {ResourceNames.ChatEventsTopic}", ActivityKind.Consumer, parent, tags, links);
            if (span is null)
            {
                continue; // the turn was not sampled
            }

            spans._turns[traceId] = new Turn(span, messages.Select(m => m.AckId).ToHashSet());
        }

        Activity.Current = batchSpan; // each start made its span current; the batch's own calls stay under the batch
        return spans;
    }

    /// <summary>An <c>insertAll {table}</c> span in every turn that has rows in this request; dispose when the call returned.</summary>
    public InsertSpans StartInsert(string dataset, string table, IReadOnlyCollection<ReceivedMessage> messages)
    {
        var spans = new List<Activity>();
        var links = _batch is null ? null : new[] { new ActivityLink(_batch.Context) };
        foreach (var turn in _turns.Values)
        {
            var rows = messages.Count(m => turn.AckIds.Contains(m.AckId));
            if (rows == 0)
            {
                continue;
            }

            List<KeyValuePair<string, object?>> tags =
            [
                new(DbAttributes.SystemName, DbAttributes.BigQuery),
                new(DbAttributes.OperationName, "insertAll"),
                new(DbAttributes.Namespace, dataset),
                new(DbAttributes.CollectionName, table),
                new("chatstack.worker.turn_rows", rows),
            ];
            if (messages.Count >= 2)
            {
                // The conventions count only two or more as a batch: a single row is a plain insert.
                tags.Add(new(DbAttributes.BatchSize, messages.Count));
            }

            if (IngestionTelemetry.ActivitySource.StartActivity($"insertAll {table}", ActivityKind.Client, turn.Span.Context, tags, links) is { } span)
            {
                spans.Add(span);
            }
        }

        Activity.Current = _batch;
        return new InsertSpans(spans, _batch);
    }

    /// <summary>What became of each turn's messages: acked (row written) or nacked (redelivered, and dead-lettered after the last attempt).</summary>
    public void Settle(IReadOnlyCollection<ReceivedMessage> acks, IReadOnlyCollection<ReceivedMessage> nacks)
    {
        foreach (var turn in _turns.Values)
        {
            var acked = acks.Count(m => turn.AckIds.Contains(m.AckId));
            var nacked = nacks.Count(m => turn.AckIds.Contains(m.AckId));
            turn.Span.SetTag("chatstack.worker.acked", acked);
            turn.Span.SetTag("chatstack.worker.nacked", nacked);
            if (nacked > 0)
            {
                turn.Span.SetStatus(ActivityStatusCode.Error, $"{nacked} message(s) nacked");
                turn.Span.SetTag(GenAiAttributes.ErrorType, "nacked");
            }
        }
    }

    public void Dispose()
    {
        foreach (var turn in _turns.Values)
        {
            turn.Span.Dispose();
        }

        Activity.Current = _batch;
    }

    /// <summary>
    /// The GCP Pub/Sub conventions' attributes of a process span, given when it starts so samplers see them: the
    /// subscription as the destination subscription, the required operation name, and a count only for a batch.
    /// </summary>
    public static List<KeyValuePair<string, object?>> ProcessTags(string subscription, int messages)
    {
        List<KeyValuePair<string, object?>> tags =
        [
            new(MessagingAttributes.System, MessagingAttributes.SystemPubSub),
            new(MessagingAttributes.DestinationName, ResourceNames.ChatEventsTopic),
            new(MessagingAttributes.SubscriptionName, subscription),
            new(MessagingAttributes.OperationType, "process"),
            new(MessagingAttributes.OperationName, "process"),
        ];
        if (messages > 1)
        {
            tags.Add(new(MessagingAttributes.BatchMessageCount, messages));
        }

        return tags;
    }

    /// <summary>The span that published the message's event, from its <c>traceparent</c> attribute.</summary>
    public static ActivityContext? ParentOf(ReceivedMessage message) =>
        message.Message.Attributes.TryGetValue(ChatEventMessages.TraceParentAttribute, out var traceParent)
        && ActivityContext.TryParse(traceParent, null, isRemote: true, out var context) ? context : null;

    private sealed record Turn(Activity Span, HashSet<string> AckIds);

    internal sealed class InsertSpans(List<Activity> spans, Activity? batch) : IDisposable
    {
        public void Fail(string errorType)
        {
            foreach (var span in spans)
            {
                span.SetStatus(ActivityStatusCode.Error, errorType);
                span.SetTag(GenAiAttributes.ErrorType, errorType);
            }
        }

        public void Dispose()
        {
            foreach (var span in spans)
            {
                span.Dispose();
            }

            Activity.Current = batch;
        }
    }
}
