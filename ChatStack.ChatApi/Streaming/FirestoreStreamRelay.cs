using System.Buffers;
using System.Collections.Concurrent;
using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Sessions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.Streaming;

/// <summary>
/// Stops and resumes a stream that another instance runs. Streams live in the memory of their instance, so without
/// session affinity a stop or a resume can reach one that does not have it. That instance finds the turn's hold
/// (<c>session_turns</c>, which names the stream, its user and its instance) and leaves a request in
/// <c>stream_requests/{streamId}.{kind}</c>; every instance listens (one Firestore listen per instance, not per
/// stream) for the requests addressed to it. A stop is done as a stop sent to it would be. A resume makes the running
/// instance copy the stream's events to <c>stream_events/{streamId}</c> (a document, and its <c>chunks</c>), from the
/// first, every quarter second until the stream ends; the instance that was asked follows them into a replica,
/// which its readers read as they would the stream itself, with the same event ids. Nothing is copied for a stream
/// nobody resumes elsewhere. A stream that has ended (its hold given up) is found through <c>stream_ends</c>, left
/// by the commit that gave the hold up, and copied whole by its instance while that keeps it for resuming.
/// </summary>
/// <remarks>Works where turns are shared (<see cref="ChatOptions.SharedTurns"/>): only then do holds name their instance.</remarks>
internal sealed class FirestoreStreamRelay(Firestore.FirestoreClient client, GoogleCloudOptions cloud, ChatStreamRegistry streams, IOptions<ChatOptions> options,
    TimeProvider time, ILogger<FirestoreStreamRelay> logger) : BackgroundService
{
    private const string Cancel = "cancel";
    private const string Mirror = "mirror";
    private const string Release = "release";
    private const int TargetId = 1;

    // A copy is read this often, and written as often as it has new events: a resumed reader sees text that much later.
    internal static readonly TimeSpan CopyEvery = TimeSpan.FromMilliseconds(250);

    // Firestore takes documents of up to 1 MiB, and commits of up to 10 MiB.
    private const int ChunkBytes = 256 * 1024;
    private const int ChunksPerCommit = 8;

    // How long a resume waits for the running instance to hear of it and copy what the reader has seen.
    private static readonly TimeSpan FollowWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    // A request and a copy outlive the hold they were made from by this much, then mean nothing (their TTL).
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, StreamCopy> _copies = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, bool> _followers = new();
    private CancellationToken _stopping;

    private string Database => $"projects/{cloud.RequireProjectId()}/databases/{cloud.FirestoreDatabase}";

    /// <summary>Completes once this instance's listen is established: requests sent to it from then on are acted on at once.</summary>
    public Task Listening => _listening.Task;

    /// <summary>
    /// Asks the instance running <paramref name="streamId"/> to stop it. False when no live turn of
    /// <paramref name="userId"/>'s has that stream (it ended, it is someone else's, or it never was).
    /// </summary>
    public async Task<bool> RequestCancelAsync(string streamId, string userId, CancellationToken cancellationToken)
    {
        if (await FindTurnAsync(streamId, userId, cancellationToken) is not { } turn)
        {
            return false;
        }

        if (!turn.Ended)
        {
            await RequestAsync(turn, Cancel, cancellationToken);
        }

        return true; // an ended stream has nothing left to stop: as where it ran, the stop is answered all the same
    }

    /// <summary>
    /// A replica of <paramref name="streamId"/>, which another instance runs or ran, once it holds the first
    /// <paramref name="seen"/> events (those its reader has seen) or, for a stream that has ended, all of them; null
    /// when no turn of <paramref name="userId"/>'s has that stream (live, or ended within the resume window), or its
    /// instance did not answer within a few seconds.
    /// </summary>
    public async Task<ChatStream?> FollowAsync(string streamId, string userId, long seen, CancellationToken cancellationToken)
    {
        if (await FindTurnAsync(streamId, userId, cancellationToken) is not { } turn)
        {
            return null;
        }

        await RequestAsync(turn, Mirror, cancellationToken);
        var replica = new ChatStream(streamId, userId, turn.SessionId, time, streams.ReconnectGrace) { IsReplica = true };
        var started = time.GetTimestamp();
        // An ended stream is copied whole in one go; a copy of it that is not complete is an older one, not yet redone.
        while (await PullAsync(replica, cancellationToken) is not { } completed || (!completed && (turn.Ended || replica.EventCount < seen)))
        {
            if (time.GetElapsedTime(started) > FollowWait)
            {
                logger.LogWarning("Instance {InstanceId} did not copy stream {StreamId} within {Seconds} s; the resume is refused", turn.InstanceId, streamId, FollowWait.TotalSeconds);
                return null;
            }

            await Task.Delay(CopyEvery / 2, time, cancellationToken);
        }

        var kept = streams.AddReplica(replica);
        if (kept == replica && !replica.IsCompleted)
        {
            var follow = FollowAsync(replica, turn);
            _followers[follow] = true;
            _ = follow.ContinueWith(done => _followers.TryRemove(done, out _), TaskScheduler.Default);
        }

        return kept;
    }

    /// <summary>Fills <paramref name="replica"/> as the copy grows, until the stream ends or nobody reads the replica.</summary>
    private async Task FollowAsync(ChatStream replica, Turn turn)
    {
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(replica.RunCancellation, _stopping);
        var failures = 0;
        var (grown, events) = (time.GetTimestamp(), replica.EventCount);
        while (!replica.IsCompleted)
        {
            try
            {
                await Task.Delay(CopyEvery, time, reading.Token);
                if (await PullAsync(replica, reading.Token) is null)
                {
                    throw new InvalidOperationException("The copy of the stream is gone.");
                }

                failures = 0;
                if (replica.EventCount != events)
                {
                    (grown, events) = (time.GetTimestamp(), replica.EventCount);
                }
                else if (time.GetElapsedTime(grown) > options.Value.TurnLease)
                {
                    // Quiet for a turn's lease (a long tool call, or a stream whose instance stopped or died before it
                    // could copy the end): looked into once a lease. No live turn and still no end: what was saved is
                    // in the session's messages.
                    grown = time.GetTimestamp();
                    if (await FindTurnAsync(replica.Id, replica.UserId, reading.Token) is null or { Ended: true } && await PullAsync(replica, reading.Token) == false)
                    {
                        logger.LogWarning("Stopped following stream {StreamId}: its instance no longer runs it and its copy has no end", replica.Id);
                        break;
                    }
                }
            }
            catch (Exception) when (reading.IsCancellationRequested)
            {
                // Nobody reads it any more, or the app stops: a later resume follows anew. The running instance
                // counts its copy as a reader (so the run goes on while it is read here): it is told to let go.
                try
                {
                    await RequestAsync(turn, Release, CancellationToken.None);
                }
                catch (Exception e)
                {
                    logger.LogDebug(e, "Could not tell instance {InstanceId} that stream {StreamId} is no longer read here", turn.InstanceId, replica.Id);
                }

                break;
            }
            catch (Exception e) when (++failures < 20)
            {
                logger.LogDebug(e, "Could not read the copy of stream {StreamId}; trying again", replica.Id);
            }
            catch (Exception e)
            {
                // Its readers' connections end without `done`; they resume again, here or where the stream runs.
                logger.LogWarning(e, "Stopped following stream {StreamId}: its copy could not be read", replica.Id);
                break;
            }
        }

        if (!replica.IsCompleted)
        {
            streams.Forget(replica);
            replica.Complete();
        }
    }

    /// <summary>
    /// Adds to <paramref name="replica"/> what the copy has past it. Null when there is no copy (yet); otherwise
    /// whether the stream has ended and the replica holds all of it (then it is completed).
    /// </summary>
    private async Task<bool?> PullAsync(ChatStream replica, CancellationToken cancellationToken)
    {
        // The copy's document first: it is written in the same commit as the chunks it counts, so they are all there.
        var copy = await FirestoreRetry.ReadDocumentAsync(client, Database, CopyName(replica.Id), cancellationToken);
        if (copy is null || Str(copy, "user_id") != replica.UserId)
        {
            return null;
        }

        var count = copy.Fields["count"].IntegerValue;
        if (replica.EventCount < count)
        {
            var query = new StructuredQuery
            {
                From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.StreamChunksCollection } },
                Where = FirestoreRetry.Where("first", StructuredQuery.Types.FieldFilter.Types.Operator.GreaterThan, new FsValue { IntegerValue = replica.EventCount }),
                OrderBy = { new StructuredQuery.Types.Order { Field = new() { FieldPath = "first" } } },
            };
            foreach (var chunk in await FirestoreRetry.QueryAsync(client, CopyName(replica.Id), query, cancellationToken))
            {
                if (chunk.Fields["first"].IntegerValue != replica.EventCount + 1)
                {
                    break; // a chunk past a gap: not there yet (cannot happen with whole commits; kept safe)
                }

                replica.Import(chunk.Fields["events"].BytesValue.Span);
            }
        }

        var completed = copy.Fields.TryGetValue("completed", out var done) && done.BooleanValue && replica.EventCount >= count;
        if (completed)
        {
            replica.Complete();
        }

        return completed;
    }

    /// <summary>Copies <paramref name="stream"/>'s events from the first, as they come, until it has ended.</summary>
    private async Task CopyAsync(ChatStream stream, CancellationToken stoppingToken)
    {
        await Task.Yield();
        var buffer = new ArrayBufferWriter<byte>(ChunkBytes + 64 * 1024);
        long copied = 0;
        var created = false;
        while (true)
        {
            var ended = stream.IsCompleted; // read first: every event of an ended stream is written by then
            var commit = new CommitRequest { Database = Database };
            var expires = Timestamp.FromDateTimeOffset(time.GetUtcNow() + streams.ResumeWindow + Lifetime);
            var last = copied;
            for (var chunks = 0; chunks < ChunksPerCommit; chunks++)
            {
                buffer.ResetWrittenCount();
                var next = stream.Export(buffer, last, ChunkBytes);
                if (next == last)
                {
                    break;
                }

                commit.Writes.Add(new Write
                {
                    Update = new Document
                    {
                        Name = $"{CopyName(stream.Id)}/{ResourceNames.StreamChunksCollection}/{last + 1:D9}",
                        Fields =
                        {
                            ["first"] = new FsValue { IntegerValue = last + 1 },
                            ["events"] = new FsValue { BytesValue = ByteString.CopyFrom(buffer.WrittenSpan) },
                            [ResourceNames.ExpiresAtField] = new FsValue { TimestampValue = expires },
                        },
                    },
                });
                last = next;
            }

            var complete = ended && last == stream.EventCount;
            if (commit.Writes.Count > 0 || complete || !created)
            {
                commit.Writes.Add(new Write
                {
                    Update = new Document
                    {
                        Name = CopyName(stream.Id),
                        Fields =
                        {
                            ["user_id"] = new FsValue { StringValue = stream.UserId },
                            ["session_id"] = new FsValue { StringValue = stream.SessionId },
                            ["count"] = new FsValue { IntegerValue = last },
                            ["completed"] = new FsValue { BooleanValue = complete },
                            [ResourceNames.ExpiresAtField] = new FsValue { TimestampValue = expires },
                        },
                    },
                });
                // Safe to repeat: each write sets what it set before.
                await FirestoreRetry.CommitAsync(
                    deadline => client.CommitAsync(commit, deadline: deadline, cancellationToken: stoppingToken).ResponseAsync,
                    RetrySafety.Safe, FirestoreRetry.Long, stoppingToken);
                (copied, created) = (last, true);
            }

            if (complete)
            {
                return;
            }

            if (last == stream.EventCount)
            {
                await Task.WhenAny(stream.Completion, Task.Delay(CopyEvery, time, stoppingToken));
                stoppingToken.ThrowIfCancellationRequested();
            }
        }
    }

    /// <summary>
    /// The turn whose stream is <paramref name="streamId"/>, if it is <paramref name="userId"/>'s: live (its hold names
    /// it), or ended within the resume window (<c>stream_ends</c> names where it ran, which keeps it that long).
    /// </summary>
    private async Task<Turn?> FindTurnAsync(string streamId, string userId, CancellationToken cancellationToken)
    {
        if (!options.Value.SharedTurns)
        {
            return null;
        }

        var query = new StructuredQuery
        {
            From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.SessionTurnsCollection } },
            Where = FieldEquals("stream_id", streamId),
            Limit = 1,
        };
        if ((await FirestoreRetry.QueryAsync(client, $"{Database}/documents", query, cancellationToken)).FirstOrDefault() is { } hold)
        {
            // A deletion's hold is no stream anyone can follow.
            return hold.Fields.TryGetValue("deleting", out var deleting) && deleting.BooleanValue
                ? null
                : TurnOf(hold, streamId, userId, hold.Name[(hold.Name.LastIndexOf('/') + 1)..], ended: false);
        }

        var end = await FirestoreRetry.ReadDocumentAsync(client, Database, $"{Database}/documents/{ResourceNames.StreamEndsCollection}/{streamId}", cancellationToken);
        return end is null || Str(end, "session_id") is not { } session ? null : TurnOf(end, streamId, userId, session, ended: true);
    }

    // A hold past its time is a dead instance's, where nobody would listen; an end past its time, a stream its instance forgot.
    private Turn? TurnOf(Document document, string streamId, string userId, string sessionId, bool ended) =>
        Str(document, "user_id") != userId || Str(document, "instance_id") is not { } instance
            || !document.Fields.TryGetValue(ResourceNames.ExpiresAtField, out var expires) || expires.TimestampValue.ToDateTimeOffset() <= time.GetUtcNow()
            ? null
            : new Turn(streamId, userId, sessionId, instance, ended);

    private async Task RequestAsync(Turn turn, string kind, CancellationToken cancellationToken)
    {
        var request = new Document
        {
            Name = RequestName(turn.StreamId, kind),
            Fields =
            {
                ["kind"] = new FsValue { StringValue = kind },
                ["stream_id"] = new FsValue { StringValue = turn.StreamId },
                ["instance_id"] = new FsValue { StringValue = turn.InstanceId },
                ["user_id"] = new FsValue { StringValue = turn.UserId },
                ["session_id"] = new FsValue { StringValue = turn.SessionId },
                ["requested_at"] = new FsValue { TimestampValue = Timestamp.FromDateTimeOffset(time.GetUtcNow()) },
                [ResourceNames.ExpiresAtField] = new FsValue { TimestampValue = Timestamp.FromDateTimeOffset(time.GetUtcNow() + Lifetime) },
            },
        };
        using (var span = Telemetry.FirestoreSpans.StartCommit(ResourceNames.StreamRequestsCollection, Database, 1, 0))
        {
            // Safe to repeat: it sets the same values (asking twice is harmless).
            await Telemetry.FirestoreSpans.Trace(span, FirestoreRetry.CommitAsync(
                deadline => client.CommitAsync(new CommitRequest { Database = Database, Writes = { new Write { Update = request } } },
                    deadline: deadline, cancellationToken: cancellationToken).ResponseAsync,
                RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
        }

        logger.LogInformation("Asked instance {InstanceId} to {Kind} stream {StreamId}", turn.InstanceId,
            kind switch { Cancel => "stop", Mirror => "copy", _ => "let go of its copy of" }, turn.StreamId);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        if (!options.Value.SharedTurns)
        {
            return;
        }

        var backoff = FirstBackoff;
        // Firestore ends a listen now and then (an idle one within minutes): one that ends is opened again quietly.
        // An outage, a second failure in a row, is logged once, not at every reconnect.
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(() =>
                {
                    if (failures >= 2)
                    {
                        logger.LogInformation("Listening for other instances' requests about this instance's streams again");
                    }

                    (failures, backoff) = (0, FirstBackoff);
                }, stoppingToken);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Any failure is retried: an exception escaping here would stop the API. Meanwhile a request sent
                // from another instance waits for the listen to come back (it stays until then).
                if (++failures == 2)
                {
                    logger.LogWarning(e, "Cannot listen for other instances' requests about this instance's streams; retrying");
                }
                else if (failures == 1)
                {
                    logger.LogDebug(e, "The listen for other instances' requests ended; listening again");
                }

                await Task.Delay(backoff, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
            }
        }

        // Copies and followers end with the app (their token is the stop's); wait for them to let go of the client.
        await Task.WhenAll(_copies.Values.Select(copy => copy.Task).Concat(_followers.Keys)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>One listen, until Firestore ends it (it does, from time to time) or it fails.</summary>
    private async Task ListenAsync(Action current, CancellationToken stoppingToken)
    {
        // Real Firestore routes a listen by its database; the emulator ignores these.
        var headers = new Metadata
        {
            { "google-cloud-resource-prefix", Database },
            { "x-goog-request-params", $"database={Uri.EscapeDataString(Database)}" },
        };
        using var call = client.Listen(headers, cancellationToken: stoppingToken);
        await call.RequestStream.WriteAsync(new ListenRequest
        {
            Database = Database,
            AddTarget = new Target
            {
                TargetId = TargetId,
                Query = new Target.Types.QueryTarget
                {
                    Parent = $"{Database}/documents",
                    StructuredQuery = new StructuredQuery
                    {
                        From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.StreamRequestsCollection } },
                        Where = FieldEquals("instance_id", streams.InstanceId),
                    },
                },
            },
        });

        while (await call.ResponseStream.MoveNext(stoppingToken))
        {
            var response = call.ResponseStream.Current;
            if (response.DocumentChange is { Document: { } request } change && change.TargetIds.Contains(TargetId))
            {
                await HandleAsync(request, stoppingToken);
            }
            else if (response.TargetChange is { TargetChangeType: TargetChange.Types.TargetChangeType.Current })
            {
                current();
                _listening.TrySetResult();
            }
            else if (response.TargetChange is { TargetChangeType: TargetChange.Types.TargetChangeType.Remove } removed)
            {
                throw new RpcException(new Status((StatusCode)(removed.Cause?.Code ?? (int)StatusCode.Unknown), removed.Cause?.Message ?? "Firestore removed the listen target."));
            }
        }
    }

    private async Task HandleAsync(Document request, CancellationToken stoppingToken)
    {
        var streamId = Str(request, "stream_id") ?? "";
        // Checked again here: the stream and its user as this instance knows them, not as the request says.
        if (streams.Find(streamId) is { IsReplica: false } stream && stream.UserId == Str(request, "user_id"))
        {
            if (Str(request, "kind") == Cancel)
            {
                logger.LogInformation("Stopping stream {StreamId}: stopped through another instance", streamId);
                stream.Cancel();
            }
            else if (Str(request, "kind") == Mirror)
            {
                var copy = new StreamCopy(stream);
                if (_copies.TryAdd(streamId, copy))
                {
                    logger.LogInformation("Copying stream {StreamId} to Firestore: resumed on another instance", streamId);
                    copy.Task = Copy(copy, stoppingToken);
                }
                else if (_copies.TryGetValue(streamId, out var running))
                {
                    running.Hold(); // read elsewhere again: the run goes on for it
                }
            }
            else if (Str(request, "kind") == Release && _copies.TryGetValue(streamId, out var copy))
            {
                copy.Let();
            }
        }

        try
        {
            // Only the request as read: one written again meanwhile (asked twice) is read again, and is harmless.
            await client.CommitAsync(new CommitRequest
            {
                Database = Database,
                Writes = { new Write { Delete = request.Name, CurrentDocument = new Precondition { UpdateTime = request.UpdateTime } } },
            }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: stoppingToken);
        }
        catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
        {
            // Left for its expiry (TTL); a listen that starts again finds it, and acting on it twice is harmless.
            logger.LogDebug(e, "Could not delete the request about stream {StreamId}", streamId);
        }
    }

    private async Task Copy(StreamCopy copy, CancellationToken stoppingToken)
    {
        copy.Hold();
        try
        {
            await CopyAsync(copy.Stream, stoppingToken);
        }
        catch (Exception) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Its follower stops reading (it finds no new events and then no copy it can read) and its readers resume again.
            logger.LogWarning(e, "Stopped copying stream {StreamId} to Firestore", copy.Stream.Id);
        }
        finally
        {
            copy.Let();
            _copies.TryRemove(KeyValuePair.Create(copy.Stream.Id, copy));
        }
    }

    /// <summary>
    /// A stream being copied. While another instance reads the copy, the copy counts as a reader of the stream: its
    /// run must not be cancelled for having no reader here.
    /// </summary>
    private sealed class StreamCopy(ChatStream stream)
    {
        private int _holding;

        public ChatStream Stream => stream;

        public Task Task { get; set; } = Task.CompletedTask;

        public void Hold()
        {
            if (Interlocked.Exchange(ref _holding, 1) == 0)
            {
                stream.Attach();
            }
        }

        public void Let()
        {
            if (Interlocked.Exchange(ref _holding, 0) == 1)
            {
                stream.Detach();
            }
        }
    }

    private string RequestName(string streamId, string kind) => $"{Database}/documents/{ResourceNames.StreamRequestsCollection}/{streamId}.{kind}";

    private string CopyName(string streamId) => $"{Database}/documents/{ResourceNames.StreamEventsCollection}/{streamId}";

    private static StructuredQuery.Types.Filter FieldEquals(string field, string value) =>
        FirestoreRetry.Where(field, StructuredQuery.Types.FieldFilter.Types.Operator.Equal, new FsValue { StringValue = value });

    private static string? Str(Document document, string field) =>
        document.Fields.TryGetValue(field, out var value) && value.ValueTypeCase == FsValue.ValueTypeOneofCase.StringValue ? value.StringValue : null;

    private sealed record Turn(string StreamId, string UserId, string SessionId, string InstanceId, bool Ended);
}
