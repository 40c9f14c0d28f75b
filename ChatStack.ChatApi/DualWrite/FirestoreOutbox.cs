using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>The <c>outbox</c> collection: one document per pending Pub/Sub message, id = the event id.</summary>
internal sealed class FirestoreOutbox(Firestore.FirestoreClient firestore, GoogleCloudOptions options) : IOutboxStore
{
    public const string Collection = "outbox";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private string Database => $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}";

    public static Write ToWrite(string database, OutboxRecord record)
    {
        var attributes = new MapValue();
        foreach (var (key, value) in record.Attributes)
        {
            attributes.Fields[key] = new FsValue { StringValue = value };
        }

        // No precondition: re-writing the same event id is the same record.
        return new Write
        {
            Update = new Document
            {
                Name = $"{database}/documents/{Collection}/{record.EventId}",
                Fields =
                {
                    ["data"] = new FsValue { BytesValue = ByteString.CopyFrom(record.Data) },
                    ["attributes"] = new FsValue { MapValue = attributes },
                    ["created_at"] = new FsValue { TimestampValue = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(record.CreatedAt) },
                },
            },
        };
    }

    public bool Durable => true;

    // The records were written with their messages, so there is always room.
    public bool HasRoom => true;

    public async Task<IReadOnlyList<OutboxRecord>> ReadAsync(int limit, CancellationToken cancellationToken)
    {
        using var call = firestore.RunQuery(new RunQueryRequest
        {
            Parent = $"{Database}/documents",
            StructuredQuery = new StructuredQuery
            {
                From = { new StructuredQuery.Types.CollectionSelector { CollectionId = Collection } },
                OrderBy = { new StructuredQuery.Types.Order { Field = new StructuredQuery.Types.FieldReference { FieldPath = "created_at" }, Direction = StructuredQuery.Types.Direction.Ascending } },
                Limit = limit,
            },
        }, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
        var records = new List<OutboxRecord>();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            if (call.ResponseStream.Current.Document is { } document)
            {
                records.Add(ToRecord(document));
            }
        }

        return records;
    }

    /// <summary>How many records wait: asked only when a read came back full, to report the outbox depth.</summary>
    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        using var call = firestore.RunAggregationQuery(new RunAggregationQueryRequest
        {
            Parent = $"{Database}/documents",
            StructuredAggregationQuery = new StructuredAggregationQuery
            {
                StructuredQuery = new StructuredQuery { From = { new StructuredQuery.Types.CollectionSelector { CollectionId = Collection } } },
                Aggregations = { new StructuredAggregationQuery.Types.Aggregation { Alias = "n", Count = new() } },
            },
        }, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
        long count = 0;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            if (call.ResponseStream.Current.Result?.AggregateFields.TryGetValue("n", out var n) == true)
            {
                count = n.IntegerValue;
            }
        }

        return count;
    }

    public async Task RemoveAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken)
    {
        var delete = new CommitRequest { Database = Database };
        delete.Writes.AddRange(records.Select(r => new Write { Delete = $"{Database}/documents/{Collection}/{r.EventId}" }));
        await firestore.CommitAsync(delete, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
    }

    private static OutboxRecord ToRecord(Document document) => new(
        document.Name[(document.Name.LastIndexOf('/') + 1)..],
        document.Fields["data"].BytesValue.ToByteArray(),
        document.Fields["attributes"].MapValue.Fields.ToDictionary(f => f.Key, f => f.Value.StringValue),
        document.Fields["created_at"].TimestampValue.ToDateTimeOffset());
}

/// <summary>Wakes the relay when a message was saved with outbox records, so delivery does not wait for a poll.</summary>
internal sealed class OutboxSignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Notify()
    {
        if (_signal.CurrentCount == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);
}
