using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace ChatStack.Tests.Support;

/// <summary>
/// Firestore's own failures in front of the real emulator, on the client's call invoker: a call a fault matches fails
/// with its status either before it leaves (Firestore never sees it) or after Firestore answered (it was applied, and
/// the client never heard).
/// </summary>
internal sealed class FirestoreFaults : Interceptor
{
    private readonly List<Fault> _faults = [];
    private readonly List<(Func<IMessage, bool> Matches, Func<Task> Action)> _before = [];
    private int _injected;

    /// <summary>How many calls failed here: a test checks its fault was met, so it cannot pass without one.</summary>
    public int Injected => Volatile.Read(ref _injected);

    /// <summary>Fails the next <paramref name="times"/> calls <paramref name="matches"/> picks (unary or server streaming).</summary>
    public void Fail(Func<IMessage, bool> matches, StatusCode status, int times = 1, bool afterFirestoreApplied = false, string detail = "injected by the test")
    {
        lock (_faults)
        {
            _faults.Add(new Fault(matches, new Status(status, detail), afterFirestoreApplied) { Left = times });
        }
    }

    /// <summary>
    /// Fails the next call <paramref name="matches"/> picks with <paramref name="exception"/> rather than a gRPC status,
    /// before it leaves: a failure the store was never written to expect, as a bug in our code would throw it.
    /// </summary>
    public void Throw(Func<IMessage, bool> matches, Exception exception)
    {
        lock (_faults)
        {
            _faults.Add(new Fault(matches, Status.DefaultSuccess, AfterFirestoreApplied: false) { Left = 1, Thrown = exception });
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> (another request's write, say) once, just before the next unary call
    /// <paramref name="matches"/> picks goes on to Firestore: a race lost on cue.
    /// </summary>
    public void Before(Func<IMessage, bool> matches, Func<Task> action)
    {
        lock (_faults)
        {
            _before.Add((matches, action));
        }
    }

    /// <summary>Every fault taken away: Firestore works again.</summary>
    public void Heal()
    {
        lock (_faults)
        {
            _faults.Clear();
            _before.Clear();
        }
    }

    /// <summary>A session read by id (a batch read of its one document: the store's, not the health probe's).</summary>
    public static bool SessionRead(IMessage request) => request is BatchGetDocumentsRequest read
        && read.Documents.Any(name => name.Contains("/documents/sessions/", StringComparison.Ordinal));

    /// <summary>A commit that saves a message of <paramref name="role"/>.</summary>
    public static Func<IMessage, bool> MessageCommit(string role) => request => request is CommitRequest commit
        && commit.Writes.Any(w => w.Update is { } document && document.Name.Contains("/messages/", StringComparison.Ordinal)
            && document.Fields.TryGetValue("role", out var value) && value.StringValue == role);

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
        AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        if (TakeBefore(request) is { } action)
        {
            async Task<TResponse> AfterAction()
            {
                await action();
                using var call = continuation(request, context);
                return await call.ResponseAsync;
            }

            return new AsyncUnaryCall<TResponse>(AfterAction(), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        if (Take(request) is not { } fault)
        {
            return continuation(request, context);
        }

        var status = fault.Status;
        if (!fault.AfterFirestoreApplied)
        {
            return new AsyncUnaryCall<TResponse>(Task.FromException<TResponse>(fault.Failure), Task.FromResult(new Metadata()), () => status, () => [], () => { });
        }

        var call = continuation(request, context);
        return new AsyncUnaryCall<TResponse>(FailAfter(call.ResponseAsync, status), call.ResponseHeadersAsync, () => status, () => [], call.Dispose);
    }

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
    {
        if (TakeBefore(request) is { } action)
        {
            var deferred = new DeferredStream<TResponse>(async () =>
            {
                await action();
                return continuation(request, context);
            });
            return new AsyncServerStreamingCall<TResponse>(deferred, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], deferred.Dispose);
        }

        if (Take(request) is not { } fault)
        {
            return continuation(request, context);
        }

        var status = fault.Status;
        return new AsyncServerStreamingCall<TResponse>(new FailingStream<TResponse>(fault.Failure), Task.FromResult(new Metadata()), () => status, () => [], () => { });
    }

    private Fault? Take(object request)
    {
        if (request is not IMessage message)
        {
            return null;
        }

        lock (_faults)
        {
            var fault = _faults.FirstOrDefault(f => f.Left > 0 && f.Matches(message));
            if (fault is not null)
            {
                fault.Left--;
                Interlocked.Increment(ref _injected);
            }

            return fault;
        }
    }

    private Func<Task>? TakeBefore(object request)
    {
        if (request is not IMessage message)
        {
            return null;
        }

        lock (_faults)
        {
            var index = _before.FindIndex(b => b.Matches(message));
            if (index < 0)
            {
                return null;
            }

            var action = _before[index].Action;
            _before.RemoveAt(index);
            return action;
        }
    }

    private static async Task<T> FailAfter<T>(Task<T> response, Status status)
    {
        await response;
        throw new RpcException(status);
    }

    private sealed record Fault(Func<IMessage, bool> Matches, Status Status, bool AfterFirestoreApplied)
    {
        public int Left { get; set; }

        /// <summary>Thrown instead of the status, when set.</summary>
        public Exception? Thrown { get; init; }

        public Exception Failure => Thrown ?? new RpcException(Status);
    }

    /// <summary>A server stream whose call starts when it is first read, once the action before it has run.</summary>
    private sealed class DeferredStream<T>(Func<Task<AsyncServerStreamingCall<T>>> start) : IAsyncStreamReader<T>, IDisposable
    {
        private AsyncServerStreamingCall<T>? _call;

        public T Current => _call!.ResponseStream.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            _call ??= await start();
            return await _call.ResponseStream.MoveNext(cancellationToken);
        }

        public void Dispose() => _call?.Dispose();
    }

    private sealed class FailingStream<T>(Exception failure) : IAsyncStreamReader<T>
    {
        public T Current => throw new InvalidOperationException();

        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromException<bool>(failure);
    }
}
