using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Cloud.PubSub.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Pulls a subscription over several StreamingPull streams (or, see <see cref="PullMode"/>, unary Pull loops) into one queue, holding at most
/// <see cref="IngestionOptions.MaxOutstandingMessages"/> messages and <see cref="IngestionOptions.MaxOutstandingBytes"/>
/// bytes (the emulator ignores server-side flow control, so the client stops reading instead), and keeps the
/// lease of every held message alive until it is acked or nacked.
/// </summary>
public sealed class SubscriptionSource(
    Subscriber.SubscriberClient subscriber, IOptions<IngestionOptions> options, ChatStack.GoogleCloud.GoogleCloudOptions cloud, ILogger<SubscriptionSource> logger)
{
    private readonly bool _streaming = options.Value.PullMode switch
    {
        PullMode.Streaming => true,
        PullMode.Unary => false,
        // The emulator never releases messages held by a StreamingPull client that died (its clean-up throws
        // NoSuchMethodError), so a crashed worker would strand them until the emulator restarts.
        _ => cloud.PubSubEmulatorHost is null,
    };

    private const int MaxAckIdsPerRequest = 1000;

    private readonly IngestionOptions _options = options.Value;
    private readonly Channel<ReceivedMessage> _queue = Channel.CreateUnbounded<ReceivedMessage>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, Lease> _held = new();
    private readonly SemaphoreSlim _messagePermits = new(options.Value.MaxOutstandingMessages, options.Value.MaxOutstandingMessages);
    // Orders extensions against settling: a lease is either in an extension's request or marked settling first.
    private readonly Lock _settling = new();
    private long _heldBytes;

    public string Subscription { get; } = $"projects/{cloud.RequireProjectId()}/subscriptions/{options.Value.Subscription}";

    public ChannelReader<ReceivedMessage> Messages => _queue.Reader;

    /// <summary>Messages received and not yet acked or nacked.</summary>
    public int Held => _held.Count;

    /// <summary>Pulls until <paramref name="stoppingToken"/> fires, then half-closes the streams so they end cleanly.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        // Pulls and lease extensions run all the time: untraced, or each idle poll would be a trace of its own.
        using var untraced = OpenTelemetry.SuppressInstrumentationScope.Begin();
        using var leases = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var extender = ExtendLeasesAsync(leases.Token);
        logger.LogInformation("Pulling {Subscription} with {Count} {Mode}", Subscription, _options.Streams, _streaming ? "StreamingPull streams" : "unary Pull loops");
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, _options.Streams))
            .Select(i => _streaming ? PullAsync(i, stoppingToken) : UnaryPullAsync(stoppingToken)));
        _queue.Writer.TryComplete();
        await leases.CancelAsync();
        await extender;
    }

    public Task AckAsync(IReadOnlyCollection<ReceivedMessage> messages, CancellationToken cancellationToken) =>
        // An extension that reaches Pub/Sub after the ack finds nothing left to extend: no need to wait for one.
        SettleAsync(messages, afterExtensions: false, ackIds => subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = Subscription, AckIds = { ackIds } },
            deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);

    /// <summary>Hands messages back for redelivery now; after the subscription's 5th attempt Pub/Sub dead-letters them.</summary>
    public Task NackAsync(IReadOnlyCollection<ReceivedMessage> messages, CancellationToken cancellationToken) =>
        // After any extension already sent for them: one reaching Pub/Sub after the nack would lease them for a
        // whole ack deadline again, holding back their retry (and dead-lettering) that long.
        SettleAsync(messages, afterExtensions: true, ackIds => subscriber.ModifyAckDeadlineAsync(
            new ModifyAckDeadlineRequest { Subscription = Subscription, AckDeadlineSeconds = 0, AckIds = { ackIds } },
            deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);

    private async Task PullAsync(int stream, CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // Not cancelled through its token: cancelling makes the emulator log a stack; half-closing ends it cleanly.
                using var call = subscriber.StreamingPull();
                await call.RequestStream.WriteAsync(new StreamingPullRequest
                {
                    Subscription = Subscription,
                    StreamAckDeadlineSeconds = _options.AckDeadlineSeconds,
                    // Per stream on the server: split the worker's limits, or Pub/Sub sends Streams times what it can hold.
                    MaxOutstandingMessages = Math.Max(1, _options.MaxOutstandingMessages / Math.Max(1, _options.Streams)),
                    MaxOutstandingBytes = Math.Max(1, _options.MaxOutstandingBytes / Math.Max(1, _options.Streams)),
                    ClientId = $"{Environment.MachineName}-{Environment.ProcessId}-{stream}",
                }, CancellationToken.None);
                await using var halfClose = stoppingToken.Register(() => _ = call.RequestStream.CompleteAsync());

                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    backoff = TimeSpan.FromMilliseconds(250);
                    var received = call.ResponseStream.Current.ReceivedMessages;

                    // Lease everything received before waiting for room: the emulator ignores server-side flow
                    // control and keeps pushing, and a message left unleased while the worker waits would expire,
                    // burn a delivery attempt and, after five, be dead-lettered without ever being processed.
                    var leases = received.Select(Hold).ToList();
                    for (var i = 0; i < received.Count; i++)
                    {
                        if (!await AdmitAsync(received[i], leases[i], stoppingToken))
                        {
                            // Stopping while waiting for room: give the rest back rather than let their leases run out.
                            await NackAsync(received.Skip(i).ToList(), CancellationToken.None);
                            break;
                        }
                    }

                    // Read on only once the held bytes are back under the limit.
                    while (Interlocked.Read(ref _heldBytes) > _options.MaxOutstandingBytes && !stoppingToken.IsCancellationRequested)
                    {
                        await Delay(TimeSpan.FromMilliseconds(5), stoppingToken);
                    }
                }
            }
            catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("StreamingPull stream {Stream} on {Subscription} ended with {Status}: {Detail}; reconnecting in {Delay} ms",
                    stream, Subscription, e.StatusCode, e.Status.Detail, (int)backoff.TotalMilliseconds);
                await Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            catch (RpcException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task UnaryPullAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            // Ask only for what there is room for.
            while (_messagePermits.CurrentCount == 0 || Interlocked.Read(ref _heldBytes) > _options.MaxOutstandingBytes)
            {
                await Delay(TimeSpan.FromMilliseconds(5), stoppingToken);
                if (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
            }

            PullResponse response;
            try
            {
                // Never cancelled: a pull cancelled in flight may already have leased messages the worker then never
                // sees, stranding them for a whole ack deadline. A short deadline bounds both an empty pull (which
                // blocks about 90 s on the emulator without one) and how long stopping waits.
                response = await subscriber.PullAsync(
                    new PullRequest { Subscription = Subscription, MaxMessages = Math.Clamp(_messagePermits.CurrentCount, 1, 1000) },
                    deadline: DateTime.UtcNow.AddSeconds(3), cancellationToken: CancellationToken.None);
                backoff = TimeSpan.FromMilliseconds(250);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
            {
                continue;
            }
            catch (RpcException e)
            {
                logger.LogWarning("Pull on {Subscription} failed with {Status}: {Detail}; retrying in {Delay} ms",
                    Subscription, e.StatusCode, e.Status.Detail, (int)backoff.TotalMilliseconds);
                await Delay(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                continue;
            }

            var received = response.ReceivedMessages;
            if (received.Count == 0)
            {
                continue;
            }

            var leases = received.Select(Hold).ToList();
            // Unary pulls get the subscription's deadline; take the worker's own, as a stream would.
            await ExtendAsync(leases);
            for (var i = 0; i < received.Count; i++)
            {
                if (!await AdmitAsync(received[i], leases[i], stoppingToken))
                {
                    await NackAsync(received.Skip(i).ToList(), CancellationToken.None);
                    break;
                }
            }
        }
    }

    private Lease Hold(ReceivedMessage message)
    {
        var lease = new Lease(message.AckId, message.Message.CalculateSize());
        _held[message.AckId] = lease;
        Interlocked.Add(ref _heldBytes, lease.Size);
        return lease;
    }

    private async Task<bool> AdmitAsync(ReceivedMessage message, Lease lease, CancellationToken stoppingToken)
    {
        try
        {
            await _messagePermits.WaitAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        lease.Admitted = true;
        _queue.Writer.TryWrite(message);
        return true;
    }

    private async Task SettleAsync(IReadOnlyCollection<ReceivedMessage> messages, bool afterExtensions, Func<IEnumerable<string>, Task> call)
    {
        var extensions = new HashSet<Task>();
        lock (_settling)
        {
            foreach (var message in messages)
            {
                if (_held.TryGetValue(message.AckId, out var lease))
                {
                    lease.Settling = true;
                    if (lease.Extension is { IsCompleted: false } extension)
                    {
                        extensions.Add(extension);
                    }
                }
            }
        }

        if (afterExtensions)
        {
            // Never faults; at most one request per extender, each bounded by its deadline.
            await Task.WhenAll(extensions);
        }

        foreach (var chunk in messages.Select(m => m.AckId).Chunk(MaxAckIdsPerRequest))
        {
            try
            {
                await call(chunk);
            }
            catch (RpcException e)
            {
                // The lease runs out and Pub/Sub redelivers: at-least-once holds, insertId de-duplicates.
                logger.LogWarning("Settling {Count} messages on {Subscription} failed with {Status}; they will be redelivered", chunk.Length, Subscription, e.StatusCode);
            }
        }

        foreach (var message in messages)
        {
            if (_held.TryRemove(message.AckId, out var lease))
            {
                Interlocked.Add(ref _heldBytes, -lease.Size);
                if (lease.Admitted)
                {
                    _messagePermits.Release();
                }
            }
        }
    }

    private async Task ExtendLeasesAsync(CancellationToken cancellationToken)
    {
        var period = TimeSpan.FromSeconds(Math.Max(1, _options.AckDeadlineSeconds / 3));
        while (!cancellationToken.IsCancellationRequested)
        {
            await Delay(period, cancellationToken);
            await ExtendAsync(_held.Values.ToList());
        }
    }

    /// <summary>
    /// Extends the leases not being settled, a request at a time. Each lease in a request notes it, so a nack can
    /// wait for that one request rather than be overtaken by it; leases settling are left out of later requests.
    /// </summary>
    private async Task ExtendAsync(IReadOnlyList<Lease> leases)
    {
        foreach (var chunk in leases.Chunk(MaxAckIdsPerRequest))
        {
            var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var ackIds = new List<string>(chunk.Length);
            lock (_settling)
            {
                foreach (var lease in chunk.Where(l => !l.Settling))
                {
                    lease.Extension = sent.Task;
                    ackIds.Add(lease.AckId);
                }
            }

            if (ackIds.Count == 0)
            {
                continue;
            }

            try
            {
                await subscriber.ModifyAckDeadlineAsync(new ModifyAckDeadlineRequest
                {
                    Subscription = Subscription,
                    AckDeadlineSeconds = _options.AckDeadlineSeconds,
                    AckIds = { ackIds },
                }, deadline: Deadline(), cancellationToken: CancellationToken.None);
            }
            catch (RpcException e)
            {
                logger.LogWarning("Extending {Count} leases on {Subscription} failed with {Status}", ackIds.Count, Subscription, e.StatusCode);
            }
            finally
            {
                sent.SetResult();
            }
        }
    }

    private static async Task Delay(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 100)), cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);

    /// <summary>A received message the worker is responsible for until it acks or nacks it.</summary>
    private sealed class Lease(string ackId, int size)
    {
        public string AckId { get; } = ackId;

        public int Size { get; } = size;

        /// <summary>Holds one of the <see cref="IngestionOptions.MaxOutstandingMessages"/> permits.</summary>
        public bool Admitted { get; set; }

        /// <summary>Acked or nacked: no extension may include it any more. Set under the settling lock.</summary>
        public bool Settling { get; set; }

        /// <summary>The last extension request that included it; done once Pub/Sub answered (or it failed).</summary>
        public Task? Extension { get; set; }
    }
}
