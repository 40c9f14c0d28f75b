using System.Diagnostics;
using Google.Cloud.Firestore.V1;
using Grpc.Core;

namespace ChatStack.ChatApi.Sessions;

/// <summary>What repeating a Firestore call could do, which decides after which failures it is repeated.</summary>
internal enum RetrySafety
{
    /// <summary>Nothing more: a read, a delete, or a write that sets the values it set before.</summary>
    Safe,

    /// <summary>
    /// An atomic commit that creates a document no one else can (a fresh id, precondition Exists=false): if an attempt
    /// that failed ambiguously was applied after all, a repeat fails whole on that precondition, which then means
    /// "saved". On a first attempt the same failure is a real refusal.
    /// </summary>
    Guarded,

    /// <summary>Adds to counters: repeated only after a failure that says nothing was applied, or it may count twice.</summary>
    Unsafe,
}

/// <summary>
/// Retries a Firestore call that failed for a passing reason, as Google's client libraries retry idempotent calls:
/// jittered exponential backoff, each attempt with its own deadline, all within a total. Past the total, or after a
/// failure it must not repeat, the store is unavailable: a 503 for a request, <c>store_unavailable</c> in a stream.
/// Any other failure is a refusal (<see cref="ChatStoreRefusedException"/>): a 500 <c>store-error</c> for a request,
/// <c>store_error</c> in a stream. A call its caller cancelled ends in <see cref="OperationCanceledException"/>.
/// </summary>
internal static class FirestoreRetry
{
    // Constants, not options: no options class holds the store's settings, and these are about what a person waits
    // for, not about a deployment.

    /// <summary>A request waits on it: about the one 5 s deadline a call had before retries, so an outage is still a quick 503.</summary>
    public static readonly TimeSpan Brief = TimeSpan.FromSeconds(5);

    /// <summary>An answer already streamed and charged: half a minute, while heartbeats keep its stream open.</summary>
    public static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    // A store that hangs (a stopped emulator, a lost connection) is tried again rather than waited on.
    private static readonly TimeSpan AttemptDeadline = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    public static TimeSpan Total(SaveWait wait) => wait == SaveWait.Long ? Long : Brief;

    /// <summary>Runs <paramref name="attempt"/>, given each try's deadline, until it succeeds or may not be repeated.</summary>
    public static async Task<T> ReadAsync<T>(Func<DateTime, Task<T>> attempt, CancellationToken cancellationToken)
    {
        var result = default(T);
        await RunAsync(async deadline => result = await attempt(deadline), RetrySafety.Safe, Brief, cancellationToken);
        return result!; // a safe call ends only by succeeding or throwing
    }

    /// <summary>
    /// One document by name, or null when there is none. A batch read, not GetDocument: it tells an absent document
    /// as a result (<c>missing</c>), so NOT_FOUND is left to mean what else Firestore says it for, a database or
    /// project that does not exist (a deployment fault, not an absent document). One read either way.
    /// </summary>
    public static Task<Document?> ReadDocumentAsync(Firestore.FirestoreClient client, string database, string name, CancellationToken cancellationToken) =>
        ReadAsync(async deadline =>
        {
            using var call = client.BatchGetDocuments(new BatchGetDocumentsRequest { Database = database, Documents = { name } },
                deadline: deadline, cancellationToken: cancellationToken);
            Document? found = null;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                found = call.ResponseStream.Current.Found ?? found;
            }

            return found;
        }, cancellationToken);

    /// <summary>A query's filter on one field: <paramref name="field"/> <paramref name="op"/> <paramref name="value"/>.</summary>
    public static StructuredQuery.Types.Filter Where(string field, StructuredQuery.Types.FieldFilter.Types.Operator op, Value value) => new()
    {
        FieldFilter = new StructuredQuery.Types.FieldFilter { Field = new StructuredQuery.Types.FieldReference { FieldPath = field }, Op = op, Value = value },
    };

    /// <summary>The documents a query under <paramref name="parent"/> finds, in its order, read again as a whole after a passing failure.</summary>
    public static Task<List<Document>> QueryAsync(Firestore.FirestoreClient client, string parent, StructuredQuery query, CancellationToken cancellationToken) =>
        ReadAsync(async deadline =>
        {
            using var call = client.RunQuery(new RunQueryRequest { Parent = parent, StructuredQuery = query }, deadline: deadline, cancellationToken: cancellationToken);
            var found = new List<Document>();
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                if (call.ResponseStream.Current.Document is { } document)
                {
                    found.Add(document);
                }
            }

            return found;
        }, cancellationToken);

    /// <summary>
    /// Runs a commit until it succeeds, is known to be saved, or may not be repeated. False when a
    /// <see cref="RetrySafety.Guarded"/> repeat failed its precondition, taken as an earlier attempt applied: a commit
    /// with preconditions others can fail too must confirm that itself.
    /// </summary>
    public static Task<bool> CommitAsync(Func<DateTime, Task> attempt, RetrySafety safety, TimeSpan total, CancellationToken cancellationToken) =>
        RunAsync(attempt, safety, total, cancellationToken);

    private static async Task<bool> RunAsync(Func<DateTime, Task> attempt, RetrySafety safety, TimeSpan total, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var backoff = FirstBackoff;
        var mayBeApplied = false;
        for (var attempts = 1; ; attempts++)
        {
            var left = total - Stopwatch.GetElapsedTime(started);
            try
            {
                await attempt(DateTime.UtcNow.Add(left < AttemptDeadline ? left : AttemptDeadline));
                return true;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                // gRPC tells a call cut short by its own token as CANCELLED. Said as the cancellation it is, so whoever
                // cancelled (a client that left, a stopped run, the app stopping) is not taken for a failed store: no
                // error log, 500 or model_error. A CANCELLED the server sent while our token stands is an outage (below).
                throw new OperationCanceledException("The Firestore call was cancelled by its caller.", e, cancellationToken);
            }
            catch (RpcException e) when (safety == RetrySafety.Guarded && mayBeApplied && e.StatusCode is StatusCode.AlreadyExists or StatusCode.FailedPrecondition)
            {
                // An earlier attempt was applied: this one found its documents (Firestore and its emulator say
                // ALREADY_EXISTS for Exists=false; FAILED_PRECONDITION is the other way a precondition fails).
                return false;
            }
            catch (RpcException e) when (IsPassing(e.StatusCode) || e.StatusCode is StatusCode.Unknown or StatusCode.Cancelled)
            {
                // UNKNOWN, and a CANCELLED the server (or a proxy on the way) sent while our token stands: the store is
                // unavailable for this call, but whether it was applied is not known, so it is not repeated.
                // Contention and quota are refusals: nothing was applied. The others may come after Firestore applied it.
                var ambiguous = e.StatusCode is not (StatusCode.Aborted or StatusCode.ResourceExhausted);
                mayBeApplied |= ambiguous;
                var delay = backoff / 2 + (backoff / 2) * Random.Shared.NextDouble();
                if (!IsPassing(e.StatusCode) || (safety == RetrySafety.Unsafe && ambiguous) || Stopwatch.GetElapsedTime(started) + delay >= total)
                {
                    throw new ChatStoreUnavailableException($"Firestore failed {attempts} time(s), last with {e.StatusCode}: {e.Status.Detail}", e);
                }

                await Task.Delay(delay, cancellationToken);
                backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
            }
            catch (RpcException e)
            {
                throw new ChatStoreRefusedException(e);
            }
        }
    }

    /// <summary>Failures that pass: the service down or slow for a moment, contention, quota, a server error.</summary>
    private static bool IsPassing(StatusCode status) => status is StatusCode.Unavailable or StatusCode.DeadlineExceeded
        or StatusCode.Aborted or StatusCode.ResourceExhausted or StatusCode.Internal;
}
