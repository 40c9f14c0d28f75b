using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.Sessions;

/// <summary>
/// Sessions in Firestore through the generated gRPC client, laid out for a person to browse:
/// <c>sessions/{sessionId}</c> (user_id, title, timestamps, token totals) and
/// <c>sessions/{sessionId}/messages/{messageId}</c> (role, content, tokens, created_at), and while a turn runs
/// <c>session_turns/{sessionId}</c> (stream_id, expires_at), the hold that keeps a second message to the session from
/// running on any instance. Every call goes through <see cref="FirestoreRetry"/>; each says whether repeating it is safe.
/// </summary>
internal sealed class FirestoreChatSessionStore(Firestore.FirestoreClient client, GoogleCloudOptions options, TimeProvider time) : IChatSessionStore
{
    private string Database => $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}";

    private string SessionName(string sessionId) => $"{Database}/documents/{ResourceNames.SessionsCollection}/{sessionId}";

    internal string TurnName(string sessionId) => $"{Database}/documents/{ResourceNames.SessionTurnsCollection}/{sessionId}";

    public async Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken) =>
        await ReadSessionAsync(sessionId, cancellationToken) is { } document ? ToSession(sessionId, document) : null;

    /// <summary>The session's document, or null when there is none (a missing session, not NOT_FOUND: see <see cref="FirestoreRetry.ReadDocumentAsync"/>).</summary>
    private Task<Document?> ReadSessionAsync(string sessionId, CancellationToken cancellationToken) =>
        FirestoreRetry.ReadDocumentAsync(client, Database, SessionName(sessionId), cancellationToken);

    private Write NewSessionWrite(ChatSession session) => new()
    {
        Update = new Document
        {
            Name = SessionName(session.Id),
            Fields =
            {
                ["user_id"] = Str(session.UserId),
                ["title"] = Str(session.Title),
                ["model"] = Str(session.Model),
                ["created_at"] = Time(session.CreatedAt),
                ["updated_at"] = Time(session.UpdatedAt),
                ["prompt_tokens"] = Int(0),
                ["completion_tokens"] = Int(0),
                ["total_tokens"] = Int(0),
                ["message_count"] = Int(0),
            },
        },
        CurrentDocument = new Precondition { Exists = false },
    };

    /// <summary>
    /// <c>user_id == ? ORDER BY updated_at DESC, __name__ DESC</c>. The emulator answers it as is; real Firestore
    /// needs the composite index (user_id ASC, updated_at DESC) on <c>sessions</c>, which the provisioner creates
    /// (ChatStackInfrastructure.SessionsByUser).
    /// </summary>
    public async Task<ChatSessionPage> ListSessionsAsync(string userId, int limit, SessionCursor? after, CancellationToken cancellationToken)
    {
        var query = new StructuredQuery
        {
            From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.SessionsCollection } },
            Where = FirestoreRetry.Where("user_id", StructuredQuery.Types.FieldFilter.Types.Operator.Equal, Str(userId)),
            OrderBy =
            {
                new StructuredQuery.Types.Order { Field = new() { FieldPath = "updated_at" }, Direction = StructuredQuery.Types.Direction.Descending },
                new StructuredQuery.Types.Order { Field = new() { FieldPath = "__name__" }, Direction = StructuredQuery.Types.Direction.Descending },
            },
            // One more than asked: whether it exists says if there is a next page.
            Limit = limit + 1,
        };
        if (after is not null)
        {
            query.StartAt = new Cursor { Values = { Time(after.UpdatedAt), new FsValue { ReferenceValue = SessionName(after.SessionId) } }, Before = false };
        }

        // Real Firestore refuses this query while its composite index is missing or still building (FAILED_PRECONDITION,
        // with a link that creates it): a deployment step not yet done, not a bug, so the caller can say so.
        List<ChatSession> sessions;
        try
        {
            sessions = (await FirestoreRetry.QueryAsync(client, $"{Database}/documents", query, cancellationToken))
                .ConvertAll(document => ToSession(document.Name[(document.Name.LastIndexOf('/') + 1)..], document));
        }
        catch (ChatStoreRefusedException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            throw new ChatStoreIndexMissingException(e.Detail, e);
        }

        return sessions.Count > limit
            ? new ChatSessionPage(sessions[..limit], new SessionCursor(sessions[limit - 1].UpdatedAt, sessions[limit - 1].Id).Encode())
            : new ChatSessionPage(sessions, null);
    }

    public async Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<DualWrite.OutboxRecord> outbox, RunUsage? usage, ChatSession? newSession,
        TurnChange? turn, SaveWait wait, CancellationToken cancellationToken)
    {
        var document = new Document
        {
            Name = $"{SessionName(sessionId)}/messages/{message.Id}",
            Fields =
            {
                ["role"] = Str(message.Role),
                ["content"] = Str(message.Content),
                ["tokens"] = Int(message.Tokens),
                ["created_at"] = Time(message.CreatedAt),
            },
        };
        AddIfSet(document, "model", message.Model);
        AddIfSet(document, "finish_reason", message.FinishReason);
        AddIfSet(document, "tool_name", message.ToolName);
        AddIfSet(document, "tool_arguments", message.ToolArguments);
        AddIfSet(document, "tool_status", message.ToolStatus);
        if (message.ReconciliationDelta is { } delta)
        {
            document.Fields["usage_reconciliation_delta"] = Int(delta);
        }

        if (message.DurationMs is { } duration)
        {
            document.Fields["duration_ms"] = new FsValue { DoubleValue = duration };
        }

        // One commit: the message and its outbox records are stored together or not at all, so no event is lost
        // between the hot path and the cold one. The message (and a new session) must not exist yet, so the commit is
        // Guarded: its usage increments are applied once however often it is retried.
        var request = new CommitRequest { Database = Database };
        if (newSession is not null)
        {
            request.Writes.Add(NewSessionWrite(newSession));
        }

        request.Writes.Add(new Write { Update = document, CurrentDocument = new Precondition { Exists = false } });
        request.Writes.AddRange(outbox.Select(record => DualWrite.FirestoreOutbox.ToWrite(Database, record)));
        if (usage is not null)
        {
            request.Writes.Add(UsageWrite(sessionId, usage));
        }

        if (turn is { } change)
        {
            await CommitWithTurnAsync(sessionId, request, change, document.Name, "messages", outbox.Count, RetrySafety.Guarded, FirestoreRetry.Total(wait), cancellationToken);
            return;
        }

        using var span = Telemetry.FirestoreSpans.StartCommit("messages", Database, request.Writes.Count, outbox.Count);
        await Telemetry.FirestoreSpans.Trace(span, Commit(request, RetrySafety.Guarded, FirestoreRetry.Total(wait), cancellationToken));
    }

    /// <summary>
    /// Commits <paramref name="request"/> with the turn's claim (created, or taken over from an expired one) or its
    /// release (deleted, while it is still this run's). The turn document is written only by runs, each under a
    /// precondition on what it last saw, so a failed precondition means another run got there first: read it, and
    /// decide again. <paramref name="proof"/> is a document the commit creates, which tells whether a repeat that
    /// found its preconditions failed was applied before.
    /// </summary>
    private async Task CommitWithTurnAsync(string sessionId, CommitRequest request, TurnChange change, string? proof, string collection, int outboxRecords,
        RetrySafety safety, TimeSpan total, CancellationToken cancellationToken)
    {
        var lease = change.Lease;
        var started = time.GetTimestamp();
        // The likely case first: no turn held (the previous one gave it up), or still this run's as it last wrote it
        // (a renewal claims again what it holds).
        var held = lease.Lost ? null : lease.Version as Timestamp;
        Precondition? expected = held is not null ? new Precondition { UpdateTime = held } : change.Release ? null : new Precondition { Exists = false };
        var writes = request.Writes.Count; // the request's own; the turn's write goes after them, decided anew each round
        for (var round = 1; ; round++)
        {
            ChatStoreRefusedException? refused = null;
            var attempt = request;
            while (attempt.Writes.Count > writes)
            {
                attempt.Writes.RemoveAt(writes);
            }

            if (expected is not null)
            {
                attempt.Writes.Add(change.Release
                    ? new Write { Delete = TurnName(sessionId), CurrentDocument = expected }
                    : TurnWrite(sessionId, lease, expected));
                if (change.Release && EndWrite(sessionId, lease) is { } end)
                {
                    attempt.Writes.Add(end);
                }
            }
            else if (attempt.Writes.Count == 0)
            {
                return; // a hold to give up that is not this one's any more, and nothing else to write
            }

            try
            {
                CommitResponse? response = null;
                Task<bool> commit;
                // Started inside the span, so the gRPC call is its child.
                using (var span = Telemetry.FirestoreSpans.StartCommit(collection, Database, attempt.Writes.Count, outboxRecords))
                {
                    commit = FirestoreRetry.CommitAsync(
                        async deadline => response = await client.CommitAsync(attempt, deadline: deadline, cancellationToken: cancellationToken),
                        safety, total, cancellationToken);
                    await Telemetry.FirestoreSpans.Trace(span, commit);
                }

                if (await commit)
                {
                    if (expected is not null)
                    {
                        lease.Version = change.Release ? null : response!.WriteResults[^1].UpdateTime;
                    }

                    return;
                }

                // A repeat met a failed precondition: its own earlier attempt, or another run's turn written meanwhile.
                if (proof is null || await FirestoreRetry.ReadDocumentAsync(client, Database, proof, cancellationToken) is not null)
                {
                    if (expected is not null)
                    {
                        lease.Version = !change.Release && await ReadTurnAsync(sessionId, cancellationToken) is { } mine && StreamOf(mine) == lease.StreamId
                            ? mine.UpdateTime
                            : null;
                    }

                    return;
                }
            }
            catch (ChatStoreRefusedException e) when (expected is not null && e.StatusCode is StatusCode.AlreadyExists or StatusCode.FailedPrecondition or StatusCode.NotFound)
            {
                if (time.GetElapsedTime(started) > FirestoreRetry.Brief)
                {
                    throw new ChatStoreUnavailableException($"The turn of session '{sessionId}' changed under {round} commits in a row; Firestore said {e.StatusCode}: {e.Detail}", e);
                }

                refused = e;
            }

            var current = await ReadTurnAsync(sessionId, cancellationToken);
            if (refused is not null && (expected!.UpdateTime is { } version ? Equals(current?.UpdateTime, version) : current is null))
            {
                // The turn is as this commit expected: another of its writes was refused (say, its message exists).
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(refused);
            }

            var holder = current is null ? null : StreamOf(current);
            if (change.Release)
            {
                // Still this run's (a renewal whose answer was lost moved its version): give it up as it is now.
                // Another run's, or none: this run's lease expired and was taken over; the commit leaves it alone.
                (expected, lease.Lost) = holder == lease.StreamId ? (new Precondition { UpdateTime = current!.UpdateTime }, false) : (null, true);
            }
            else if (holder == lease.StreamId)
            {
                lease.Version = current!.UpdateTime; // an earlier attempt of this commit was applied
                return;
            }
            else if (current is not null && ExpiresAt(current) > time.GetUtcNow() && !(lease.Deleting && IsDeletion(current))
                && !(holder is not null && lease.EndedHere?.Invoke(holder) == true))
            {
                throw new ChatSessionBusyException(sessionId, holder ?? "", IsDeletion(current));
            }
            else
            {
                // Expired: its run's instance died (or stopped renewing). Or a deletion's, which another deletion may
                // repeat (one cut short must not lock its retry out). Or a turn this instance ran and saw end, whose
                // last commit could not give it up. Taken over on the version read.
                expected = current is null ? new Precondition { Exists = false } : new Precondition { UpdateTime = current.UpdateTime };
            }
        }
    }

    private Write TurnWrite(string sessionId, TurnLease lease, Precondition expected)
    {
        var turn = new Document { Name = TurnName(sessionId), Fields = { ["stream_id"] = Str(lease.StreamId), [ResourceNames.ExpiresAtField] = Time(time.GetUtcNow() + lease.Lifetime) } };
        if (lease.Deleting)
        {
            turn.Fields["deleting"] = new FsValue { BooleanValue = true };
        }

        AddIfSet(turn, "user_id", lease.UserId);
        AddIfSet(turn, "instance_id", lease.InstanceId);

        return new Write { Update = turn, CurrentDocument = expected };
    }

    /// <summary>
    /// Where the turn's stream ran, kept once its hold is given up (the hold named it until then), for a resume that
    /// reaches another instance. It rides in the commit that gives the hold up: no write of its own.
    /// </summary>
    private Write? EndWrite(string sessionId, TurnLease lease)
    {
        if (lease is not { ResumableFor: { } kept, UserId: { } user, InstanceId: { } instance, Deleting: false })
        {
            return null;
        }

        return new Write
        {
            Update = new Document
            {
                Name = $"{Database}/documents/{ResourceNames.StreamEndsCollection}/{lease.StreamId}",
                Fields =
                {
                    ["user_id"] = Str(user),
                    ["instance_id"] = Str(instance),
                    ["session_id"] = Str(sessionId),
                    [ResourceNames.ExpiresAtField] = Time(time.GetUtcNow() + kept),
                },
            },
        };
    }

    // Safe to repeat: a repeat after its own write fails the precondition, and the read then finds the hold this one's.
    public Task ClaimTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) =>
        CommitWithTurnAsync(sessionId, new CommitRequest { Database = Database }, TurnChange.Claim(lease), null, ResourceNames.SessionTurnsCollection, 0,
            RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken);

    // Safe to repeat: a repeat after its own delete finds the hold gone, and leaves it so.
    public Task GiveUpTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) =>
        CommitWithTurnAsync(sessionId, new CommitRequest { Database = Database }, TurnChange.GiveUp(lease), null, ResourceNames.SessionTurnsCollection, 0,
            RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken);

    private Task<Document?> ReadTurnAsync(string sessionId, CancellationToken cancellationToken) =>
        FirestoreRetry.ReadDocumentAsync(client, Database, TurnName(sessionId), cancellationToken);

    private static string? StreamOf(Document turn) => S(turn, "stream_id");

    private static DateTimeOffset ExpiresAt(Document turn) => T(turn, ResourceNames.ExpiresAtField);

    private static bool IsDeletion(Document turn) => turn.Fields.TryGetValue("deleting", out var deleting) && deleting.BooleanValue;

    // A claim of what the lease holds, from its version: the same write, read and decision as the first claim. Another
    // turn's live hold means this one's lapsed and was taken over.
    public async Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken)
    {
        if (lease.Lost || lease.Version is null)
        {
            return;
        }

        try
        {
            await CommitWithTurnAsync(sessionId, new CommitRequest { Database = Database }, TurnChange.Claim(lease), null, ResourceNames.SessionTurnsCollection, 0,
                RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken);
        }
        catch (ChatSessionBusyException)
        {
            lease.Lost = true;
        }
    }

    public async Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken)
    {
        var messages = new List<ChatMessageRecord>();
        var pageToken = "";
        do
        {
            // Ids are time-ordered, and documents list in id order: no index needed.
            var page = await FirestoreRetry.ReadAsync(deadline => client.ListDocumentsAsync(new ListDocumentsRequest
            {
                Parent = SessionName(sessionId),
                CollectionId = "messages",
                PageSize = 300,
                PageToken = pageToken,
            }, deadline: deadline, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
            messages.AddRange(page.Documents.Select(ToMessage));
            pageToken = page.NextPageToken;
        }
        while (!string.IsNullOrEmpty(pageToken));

        return messages;
    }

    public async Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken)
    {
        // Ordered by document name, which sorts as the time-ordered ids do: the default index serves it.
        var query = new StructuredQuery
        {
            From = { new StructuredQuery.Types.CollectionSelector { CollectionId = "messages" } },
            OrderBy = { new StructuredQuery.Types.Order { Field = new() { FieldPath = "__name__" }, Direction = StructuredQuery.Types.Direction.Ascending } },
            Limit = limit,
        };
        if (after is not null)
        {
            query.StartAt = new Cursor { Values = { new FsValue { ReferenceValue = $"{SessionName(sessionId)}/messages/{after}" } }, Before = false };
        }

        return (await FirestoreRetry.QueryAsync(client, SessionName(sessionId), query, cancellationToken)).ConvertAll(ToMessage);
    }

    // Increments with nothing to guard them: repeated only when Firestore said it applied nothing.
    public Task AddUsageAsync(string sessionId, RunUsage usage, TurnLease? giveUp, CancellationToken cancellationToken) => giveUp is null
        ? Commit(UsageWrite(sessionId, usage), RetrySafety.Unsafe, cancellationToken)
        : CommitWithTurnAsync(sessionId, new CommitRequest { Database = Database, Writes = { UsageWrite(sessionId, usage) } }, TurnChange.GiveUp(giveUp), null,
            ResourceNames.SessionsCollection, 0, RetrySafety.Unsafe, FirestoreRetry.Long, cancellationToken);

    private Write UsageWrite(string sessionId, RunUsage usage) => new()
    {
        Update = new Document { Name = SessionName(sessionId), Fields = { ["updated_at"] = Time(usage.At) } },
        UpdateMask = new DocumentMask { FieldPaths = { "updated_at" } },
        UpdateTransforms =
        {
            Increment("prompt_tokens", usage.PromptTokens),
            Increment("completion_tokens", usage.CompletionTokens),
            Increment("total_tokens", usage.PromptTokens + usage.CompletionTokens),
            Increment("message_count", usage.Messages),
        },
        CurrentDocument = new Precondition { Exists = true },
    };

    // Sets fields to given values: the same outcome however often it is applied.
    public Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Commit(new Write
        {
            Update = new Document
            {
                Name = SessionName(sessionId),
                Fields = { ["summary"] = Str(summary), ["summary_through_message_id"] = Str(throughMessageId), ["updated_at"] = Time(now) },
            },
            UpdateMask = new DocumentMask { FieldPaths = { "summary", "summary_through_message_id", "updated_at" } },
            CurrentDocument = new Precondition { Exists = true },
        }, RetrySafety.Safe, cancellationToken);

    // Sets the title: the same outcome however often it is applied.
    public async Task<bool> RenameSessionAsync(string sessionId, string title, CancellationToken cancellationToken)
    {
        try
        {
            await Commit(new Write
            {
                Update = new Document { Name = SessionName(sessionId), Fields = { ["title"] = Str(title) } },
                UpdateMask = new DocumentMask { FieldPaths = { "title" } },
                CurrentDocument = new Precondition { Exists = true }, // a session deleted meanwhile is not brought back
            }, RetrySafety.Safe, cancellationToken);
            return true;
        }
        catch (ChatStoreRefusedException e) when (e.StatusCode == StatusCode.NotFound)
        {
            // Deleted since it was read, or no database at all: only a read tells which (on this rare path alone).
            if (await ReadSessionAsync(sessionId, cancellationToken) is null)
            {
                return false;
            }

            throw;
        }
    }

    /// <summary>
    /// The messages first, a commit per page (Firestore takes at most 500 writes in one), the session last: until the
    /// session is gone it still lists, so a failed delete is visible and can be repeated. Deletes without a precondition
    /// succeed on what is already gone, so each call is safe to repeat.
    /// </summary>
    public async Task DeleteSessionAsync(string sessionId, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Names only (an empty mask), always the first page: what was deleted no longer lists.
            var page = await FirestoreRetry.ReadAsync(deadline => client.ListDocumentsAsync(new ListDocumentsRequest
            {
                Parent = SessionName(sessionId),
                CollectionId = "messages",
                PageSize = MaxWritesPerCommit,
                Mask = new DocumentMask(),
            }, deadline: deadline, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
            if (page.Documents.Count == 0)
            {
                break;
            }

            var request = new CommitRequest { Database = Database };
            request.Writes.AddRange(page.Documents.Select(d => new Write { Delete = d.Name }));
            using var span = Telemetry.FirestoreSpans.StartCommit("messages", Database, request.Writes.Count, 0);
            await Telemetry.FirestoreSpans.Trace(span, Commit(request, RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
        }

        // A turn's hold goes with its session (a turn still running finds its session gone when it saves).
        using var last = Telemetry.FirestoreSpans.StartCommit(ResourceNames.SessionsCollection, Database, 2, 0);
        await Telemetry.FirestoreSpans.Trace(last, Commit(new CommitRequest { Database = Database, Writes = { new Write { Delete = TurnName(sessionId) }, new Write { Delete = SessionName(sessionId) } } },
            RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
    }

    private const int MaxWritesPerCommit = 500;

    private async Task Commit(Write write, RetrySafety safety, CancellationToken cancellationToken)
    {
        using var span = Telemetry.FirestoreSpans.StartCommit(ResourceNames.SessionsCollection, Database, 1, 0);
        await Telemetry.FirestoreSpans.Trace(span, Commit(new CommitRequest { Database = Database, Writes = { write } }, safety, FirestoreRetry.Brief, cancellationToken));
    }

    private Task Commit(CommitRequest request, RetrySafety safety, TimeSpan total, CancellationToken cancellationToken) =>
        FirestoreRetry.CommitAsync(deadline => client.CommitAsync(request, deadline: deadline, cancellationToken: cancellationToken).ResponseAsync, safety, total, cancellationToken);

    private static DocumentTransform.Types.FieldTransform Increment(string field, long by) =>
        new() { FieldPath = field, Increment = Int(by) };

    private static FsValue Str(string value) => new() { StringValue = value };

    private static FsValue Int(long value) => new() { IntegerValue = value };

    private static FsValue Time(DateTimeOffset value) => new() { TimestampValue = Timestamp.FromDateTimeOffset(value) };

    private static void AddIfSet(Document document, string field, string? value)
    {
        if (value is not null)
        {
            document.Fields[field] = Str(value);
        }
    }

    private static ChatSession ToSession(string id, Document d) => new()
    {
        Id = id,
        UserId = S(d, "user_id") ?? "",
        Title = S(d, "title") ?? "",
        Model = S(d, "model") ?? "",
        CreatedAt = T(d, "created_at"),
        UpdatedAt = T(d, "updated_at"),
        PromptTokens = I(d, "prompt_tokens"),
        CompletionTokens = I(d, "completion_tokens"),
        TotalTokens = I(d, "total_tokens"),
        MessageCount = I(d, "message_count"),
        Summary = S(d, "summary"),
        SummaryThroughMessageId = S(d, "summary_through_message_id"),
    };

    private static ChatMessageRecord ToMessage(Document d) => new()
    {
        Id = d.Name[(d.Name.LastIndexOf('/') + 1)..],
        Role = S(d, "role") ?? "",
        Content = S(d, "content") ?? "",
        Tokens = (int)I(d, "tokens"),
        CreatedAt = T(d, "created_at"),
        Model = S(d, "model"),
        FinishReason = S(d, "finish_reason"),
        ToolName = S(d, "tool_name"),
        ToolArguments = S(d, "tool_arguments"),
        ToolStatus = S(d, "tool_status"),
        ReconciliationDelta = d.Fields.TryGetValue("usage_reconciliation_delta", out var r) && r.ValueTypeCase == FsValue.ValueTypeOneofCase.IntegerValue ? (int)r.IntegerValue : null,
        DurationMs = d.Fields.TryGetValue("duration_ms", out var v) && v.ValueTypeCase == FsValue.ValueTypeOneofCase.DoubleValue ? v.DoubleValue : null,
    };

    private static string? S(Document d, string field) =>
        d.Fields.TryGetValue(field, out var v) && v.ValueTypeCase == FsValue.ValueTypeOneofCase.StringValue ? v.StringValue : null;

    private static long I(Document d, string field) =>
        d.Fields.TryGetValue(field, out var v) && v.ValueTypeCase == FsValue.ValueTypeOneofCase.IntegerValue ? v.IntegerValue : 0;

    private static DateTimeOffset T(Document d, string field) =>
        d.Fields.TryGetValue(field, out var v) && v.TimestampValue is { } t ? t.ToDateTimeOffset() : default;
}
