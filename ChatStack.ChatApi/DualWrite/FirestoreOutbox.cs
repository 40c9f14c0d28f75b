using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// The <c>outbox</c> collection: one document per pending Pub/Sub message, id = the event id. A document the relay
/// cannot turn into a message is moved to <c>outbox_dead</c>, so it neither blocks the others nor is lost.
/// </summary>
/// <remarks>
/// The relay reads in <c>created_at</c> order, and Firestore leaves a document without that field out of an ordered
/// query: such a document is never delivered, never moved and never deleted, only counted in the depth. The API
/// writes <c>created_at</c> in every record's own write, so only a document written by hand can lack it.
/// </remarks>
internal sealed class FirestoreOutbox(Firestore.FirestoreClient firestore, GoogleCloudOptions options, ILogger<FirestoreOutbox> logger) : IOutboxStore
{
    public const string Collection = "outbox";

    /// <summary>Where undecodable outbox documents go, with the reason in <see cref="ProblemField"/>.</summary>
    public const string DeadCollection = "outbox_dead";

    public const string ProblemField = "outbox_problem";

    /// <summary>
    /// The depth count stops here: a count scans index entries, so an uncapped one grows with the backlog an
    /// outage builds until it misses its deadline. Past the cap the depth reads as the cap.
    /// </summary>
    public const long CountCap = 100_000;

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
        var undecodable = new List<(Document Document, string Problem)>();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            if (call.ResponseStream.Current.Document is { } document)
            {
                if (Decode(document) is { } problem)
                {
                    undecodable.Add((document, problem));
                }
                else
                {
                    records.Add(ToRecord(document));
                }
            }
        }

        foreach (var (document, problem) in undecodable)
        {
            await MoveAsideAsync(document, problem, cancellationToken);
        }

        return records;
    }

    /// <summary>How many records wait, up to <see cref="CountCap"/>: asked only when a read came back full, for the outbox depth.</summary>
    public async Task<long> CountAsync(CancellationToken cancellationToken)
    {
        using var call = firestore.RunAggregationQuery(new RunAggregationQueryRequest
        {
            Parent = $"{Database}/documents",
            StructuredAggregationQuery = new StructuredAggregationQuery
            {
                StructuredQuery = new StructuredQuery { From = { new StructuredQuery.Types.CollectionSelector { CollectionId = Collection } } },
                Aggregations = { new StructuredAggregationQuery.Types.Aggregation { Alias = "n", Count = new() { UpTo = CountCap } } },
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

    /// <summary>
    /// Moves a document aside in one commit: its copy in <see cref="DeadCollection"/> with the reason, and its delete
    /// from the outbox only if nobody rewrote it since it was read (the API re-writing the same event id is a good
    /// record, which the next read delivers).
    /// </summary>
    private async Task MoveAsideAsync(Document document, string problem, CancellationToken cancellationToken)
    {
        var id = IdOf(document);
        var dead = new Document { Name = $"{Database}/documents/{DeadCollection}/{id}", Fields = { document.Fields } };
        dead.Fields[ProblemField] = new FsValue { StringValue = problem };
        var commit = new CommitRequest
        {
            Database = Database,
            Writes =
            {
                new Write { Update = dead },
                new Write { Delete = document.Name, CurrentDocument = new Precondition { UpdateTime = document.UpdateTime } },
            },
        };
        try
        {
            await firestore.CommitAsync(commit, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.NotFound)
        {
            return; // changed or gone since the read: the next read decides again
        }

        logger.LogError("Outbox document {EventId} cannot be published ({Problem}); moved to {DeadCollection}/{EventId} so the other events go on",
            id, problem, DeadCollection, id);
    }

    /// <summary>Why a document is not an outbox record this version can publish, or null when it is one.</summary>
    private static string? Decode(Document document)
    {
        if (!document.Fields.TryGetValue("data", out var data) || data.ValueTypeCase != FsValue.ValueTypeOneofCase.BytesValue)
        {
            return "data is missing or not bytes";
        }

        if (!document.Fields.TryGetValue("attributes", out var attributes) || attributes.ValueTypeCase != FsValue.ValueTypeOneofCase.MapValue
            || attributes.MapValue.Fields.Values.Any(v => v.ValueTypeCase != FsValue.ValueTypeOneofCase.StringValue))
        {
            return "attributes is missing or not a map of strings";
        }

        // Missing, it would not have been read (see the remarks); of another type, it sorts apart but is read.
        return document.Fields.TryGetValue("created_at", out var createdAt) && createdAt.ValueTypeCase == FsValue.ValueTypeOneofCase.TimestampValue
            ? null
            : "created_at is not a timestamp";
    }

    private static string IdOf(Document document) => document.Name[(document.Name.LastIndexOf('/') + 1)..];

    private static OutboxRecord ToRecord(Document document) => new(
        IdOf(document),
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
