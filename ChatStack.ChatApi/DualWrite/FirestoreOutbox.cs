using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using Google.Cloud.Firestore.V1;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>The <c>outbox</c> collection: one document per pending Pub/Sub message, id = the event id.</summary>
internal sealed class FirestoreOutbox(Firestore.FirestoreClient firestore, Publisher.PublisherClient publisher, GoogleCloudOptions options)
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

    /// <summary>The oldest pending records.</summary>
    public async Task<IReadOnlyList<Document>> ReadAsync(int limit, CancellationToken cancellationToken)
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
        var documents = new List<Document>();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            if (call.ResponseStream.Current.Document is { } document)
            {
                documents.Add(document);
            }
        }

        return documents;
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

    /// <summary>Publishes the records to <c>chat-events</c>, then removes them; a failure leaves them for the next try.</summary>
    public async Task PublishAndRemoveAsync(IReadOnlyList<Document> documents, CancellationToken cancellationToken)
    {
        var request = new PublishRequest { Topic = PubSubNames.Topic(options.RequireProjectId(), ResourceNames.ChatEventsTopic) };
        foreach (var document in documents)
        {
            var message = new PubsubMessage { Data = document.Fields["data"].BytesValue };
            foreach (var (key, value) in document.Fields["attributes"].MapValue.Fields)
            {
                message.Attributes[key] = value.StringValue;
            }

            request.Messages.Add(message);
        }

        await publisher.PublishAsync(request, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
        var delete = new CommitRequest { Database = Database };
        delete.Writes.AddRange(documents.Select(d => new Write { Delete = d.Name }));
        await firestore.CommitAsync(delete, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
    }
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
