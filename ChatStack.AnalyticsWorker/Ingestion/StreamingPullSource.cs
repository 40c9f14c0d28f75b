using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Cloud.PubSub.V1;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace ChatStack.AnalyticsWorker.Ingestion;

/// <summary>
/// Pulls a subscription over several StreamingPull streams into one queue, holding at most
/// <see cref="IngestionOptions.MaxOutstandingMessages"/> messages and <see cref="IngestionOptions.MaxOutstandingBytes"/>
/// bytes (the emulator ignores server-side flow control, so the client stops reading instead), and keeps the
/// lease of every held message alive until it is acked or nacked.
/// </summary>
public sealed class StreamingPullSource(
    Subscriber.SubscriberClient subscriber, IOptions<IngestionOptions> options, ChatStack.GoogleCloud.GoogleCloudOptions cloud, ILogger<StreamingPullSource> logger)
{
    private const int MaxAckIdsPerRequest = 1000;

    private readonly IngestionOptions _options = options.Value;
    private readonly Channel<ReceivedMessage> _queue = Channel.CreateUnbounded<ReceivedMessage>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, int> _held = new();
    private readonly SemaphoreSlim _messagePermits = new(options.Value.MaxOutstandingMessages, options.Value.MaxOutstandingMessages);
    private long _heldBytes;

    public string Subscription { get; } = $"projects/{cloud.RequireProjectId()}/subscriptions/{options.Value.Subscription}";

    public ChannelReader<ReceivedMessage> Messages => _queue.Reader;

    /// <summary>Messages received and not yet acked or nacked.</summary>
    public int Held => _held.Count;

    /// <summary>Pulls until <paramref name="stoppingToken"/> fires, then half-closes the streams so they end cleanly.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        using var leases = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var extender = ExtendLeasesAsync(leases.Token);
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, _options.Streams)).Select(i => PullAsync(i, stoppingToken)));
        _queue.Writer.TryComplete();
        await leases.CancelAsync();
        await extender;
    }

    public Task AckAsync(IReadOnlyCollection<ReceivedMessage> messages, CancellationToken cancellationToken) =>
        SettleAsync(messages, ackIds => subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = Subscription, AckIds = { ackIds } },
            deadline: Deadline(), cancellationToken: cancellationToken).ResponseAsync);

    /// <summary>Hands messages back for redelivery now; after the subscription's 5th attempt Pub/Sub dead-letters them.</summary>
    public Task NackAsync(IReadOnlyCollection<ReceivedMessage> messages, CancellationToken cancellationToken) =>
        SettleAsync(messages, ackIds => subscriber.ModifyAckDeadlineAsync(
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
                    MaxOutstandingMessages = _options.MaxOutstandingMessages,
                    MaxOutstandingBytes = _options.MaxOutstandingBytes,
                    ClientId = $"{Environment.MachineName}-{Environment.ProcessId}-{stream}",
                }, CancellationToken.None);
                await using var halfClose = stoppingToken.Register(() => _ = call.RequestStream.CompleteAsync());

                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    backoff = TimeSpan.FromMilliseconds(250);
                    var received = call.ResponseStream.Current.ReceivedMessages;
                    for (var i = 0; i < received.Count; i++)
                    {
                        if (!await HoldAsync(received[i], stoppingToken))
                        {
                            // Stopping while waiting for room: give the rest back rather than let their leases run out.
                            await NackAsync(received.Skip(i).ToList(), CancellationToken.None);
                            break;
                        }
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

    private async Task<bool> HoldAsync(ReceivedMessage message, CancellationToken stoppingToken)
    {
        var size = message.Message.CalculateSize();
        try
        {
            await _messagePermits.WaitAsync(stoppingToken);
            while (Interlocked.Read(ref _heldBytes) + size > _options.MaxOutstandingBytes && !_held.IsEmpty)
            {
                await Task.Delay(5, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        Interlocked.Add(ref _heldBytes, size);
        _held[message.AckId] = size;
        _queue.Writer.TryWrite(message);
        return true;
    }

    private async Task SettleAsync(IReadOnlyCollection<ReceivedMessage> messages, Func<IEnumerable<string>, Task> call)
    {
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
            if (_held.TryRemove(message.AckId, out var size))
            {
                Interlocked.Add(ref _heldBytes, -size);
                _messagePermits.Release();
            }
        }
    }

    private async Task ExtendLeasesAsync(CancellationToken cancellationToken)
    {
        var period = TimeSpan.FromSeconds(Math.Max(1, _options.AckDeadlineSeconds / 3));
        while (!cancellationToken.IsCancellationRequested)
        {
            await Delay(period, cancellationToken);
            foreach (var chunk in _held.Keys.Chunk(MaxAckIdsPerRequest))
            {
                try
                {
                    await subscriber.ModifyAckDeadlineAsync(new ModifyAckDeadlineRequest
                    {
                        Subscription = Subscription,
                        AckDeadlineSeconds = _options.AckDeadlineSeconds,
                        AckIds = { chunk },
                    }, deadline: Deadline(), cancellationToken: CancellationToken.None);
                }
                catch (RpcException e)
                {
                    logger.LogWarning("Extending {Count} leases on {Subscription} failed with {Status}", chunk.Length, Subscription, e.StatusCode);
                }
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
}
