using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Sessions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.Streaming;

/// <summary>
/// Stops a stream that another instance runs. Streams live in the memory of their instance, so without session
/// affinity a stop can reach one that does not have it: that instance finds the turn's hold
/// (<c>session_turns</c>, which names the stream, its user and its instance) and leaves a request in
/// <c>stream_cancels/{streamId}</c>. Every instance listens (one Firestore listen per instance, not per stream) for
/// the requests addressed to it, stops the stream as a stop sent to it would, and deletes the request.
/// </summary>
/// <remarks>Works where turns are shared (<see cref="ChatOptions.SharedTurns"/>): only then do holds name their instance.</remarks>
internal sealed class FirestoreStreamCancels(Firestore.FirestoreClient client, GoogleCloudOptions cloud, ChatStreamRegistry streams, IOptions<ChatOptions> options,
    TimeProvider time, ILogger<FirestoreStreamCancels> logger) : BackgroundService
{
    private const int TargetId = 1;
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    // A request outlives the hold it was read from by this much, for its listener to be back from a reconnect.
    private static readonly TimeSpan RequestLifetime = TimeSpan.FromMinutes(2);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string Database => $"projects/{cloud.RequireProjectId()}/databases/{cloud.FirestoreDatabase}";

    /// <summary>Completes once this instance's listen is established: requests sent to it from then on stop their stream at once.</summary>
    public Task Listening => _listening.Task;

    /// <summary>
    /// Asks the instance running <paramref name="streamId"/> to stop it. False when no live turn of
    /// <paramref name="userId"/>'s has that stream (it ended, it is someone else's, or it never was).
    /// </summary>
    public async Task<bool> RequestAsync(string streamId, string userId, CancellationToken cancellationToken)
    {
        if (!options.Value.SharedTurns)
        {
            return false;
        }

        var query = new StructuredQuery
        {
            From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.SessionTurnsCollection } },
            Where = FieldEquals("stream_id", streamId),
            Limit = 1,
        };
        var hold = await FirestoreRetry.ReadAsync(async deadline =>
        {
            using var call = client.RunQuery(new RunQueryRequest { Parent = $"{Database}/documents", StructuredQuery = query },
                deadline: deadline, cancellationToken: cancellationToken);
            Document? found = null;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                found = call.ResponseStream.Current.Document ?? found;
            }

            return found;
        }, cancellationToken);

        // A hold past its time is a dead instance's: nobody would listen. A deletion's is no stream anyone can stop.
        if (hold is null || Str(hold, "user_id") != userId || Str(hold, "instance_id") is not { } instance
            || (hold.Fields.TryGetValue("deleting", out var deleting) && deleting.BooleanValue)
            || !hold.Fields.TryGetValue(ResourceNames.ExpiresAtField, out var expires) || expires.TimestampValue.ToDateTimeOffset() <= time.GetUtcNow())
        {
            return false;
        }

        var request = new Document
        {
            Name = RequestName(streamId),
            Fields =
            {
                ["instance_id"] = new FsValue { StringValue = instance },
                ["user_id"] = new FsValue { StringValue = userId },
                ["session_id"] = new FsValue { StringValue = hold.Name[(hold.Name.LastIndexOf('/') + 1)..] },
                ["requested_at"] = new FsValue { TimestampValue = Timestamp.FromDateTimeOffset(time.GetUtcNow()) },
                [ResourceNames.ExpiresAtField] = new FsValue { TimestampValue = Timestamp.FromDateTimeOffset(expires.TimestampValue.ToDateTimeOffset() + RequestLifetime) },
            },
        };
        // Safe to repeat: it sets the same values (a second stop of the same stream asks again, which is harmless).
        using (var span = Telemetry.FirestoreSpans.StartCommit(ResourceNames.StreamCancelsCollection, Database, 1, 0))
        {
            await Telemetry.FirestoreSpans.Trace(span, FirestoreRetry.CommitAsync(
                deadline => client.CommitAsync(new CommitRequest { Database = Database, Writes = { new Write { Update = request } } },
                    deadline: deadline, cancellationToken: cancellationToken).ResponseAsync,
                RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
        }
        logger.LogInformation("Asked instance {InstanceId} to stop stream {StreamId}", instance, streamId);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.SharedTurns)
        {
            return;
        }

        var backoff = FirstBackoff;
        var failing = false; // an outage is logged once, not at every reconnect
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(() =>
                {
                    if (failing)
                    {
                        logger.LogInformation("Listening for requests to stop this instance's streams again");
                        failing = false;
                    }

                    backoff = FirstBackoff;
                }, stoppingToken);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Any failure is retried: an exception escaping here would stop the API. Meanwhile a stop sent to
                // another instance waits for the listen to come back (the request stays until then).
                if (!failing)
                {
                    logger.LogWarning(e, "Cannot listen for requests to stop this instance's streams; retrying");
                    failing = true;
                }

                await Task.Delay(backoff, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
            }
        }
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
                        From = { new StructuredQuery.Types.CollectionSelector { CollectionId = ResourceNames.StreamCancelsCollection } },
                        Where = FieldEquals("instance_id", streams.InstanceId),
                    },
                },
            },
        }, stoppingToken);

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
        var streamId = request.Name[(request.Name.LastIndexOf('/') + 1)..];
        // Checked again here: the stream and its user as this instance knows them, not as the request says.
        if (streams.Find(streamId) is { } stream && stream.UserId == Str(request, "user_id"))
        {
            logger.LogInformation("Stopping stream {StreamId}: stopped through another instance", streamId);
            stream.Cancel();
        }

        try
        {
            // Only the request as read: one written again meanwhile (a second stop) is read again, and is harmless.
            await client.CommitAsync(new CommitRequest
            {
                Database = Database,
                Writes = { new Write { Delete = request.Name, CurrentDocument = new Precondition { UpdateTime = request.UpdateTime } } },
            }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: stoppingToken);
        }
        catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
        {
            // Left for its expiry (TTL); a listen that starts again finds it, and a stream already stopped ignores it.
            logger.LogDebug(e, "Could not delete the stop request of stream {StreamId}", streamId);
        }
    }

    private string RequestName(string streamId) => $"{Database}/documents/{ResourceNames.StreamCancelsCollection}/{streamId}";

    private static StructuredQuery.Types.Filter FieldEquals(string field, string value) => new()
    {
        FieldFilter = new StructuredQuery.Types.FieldFilter
        {
            Field = new StructuredQuery.Types.FieldReference { FieldPath = field },
            Op = StructuredQuery.Types.FieldFilter.Types.Operator.Equal,
            Value = new FsValue { StringValue = value },
        },
    };

    private static string? Str(Document document, string field) =>
        document.Fields.TryGetValue(field, out var value) && value.ValueTypeCase == FsValue.ValueTypeOneofCase.StringValue ? value.StringValue : null;
}
