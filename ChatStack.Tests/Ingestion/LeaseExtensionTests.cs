using ChatStack.AnalyticsWorker.Ingestion;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.Ingestion;

/// <summary>The worker's subscription source against the Pub/Sub emulator, with its lease extensions slowed on the way there.</summary>
[Collection(StackCollection.Name)]
public sealed class LeaseExtensionTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private const string Subscription = "events";
    private const int AckDeadlineSeconds = 30;

    private readonly WorkerTestProject _project = new(stack, "le");

    public void Dispose() => _project.Dispose();

    /// <remarks>
    /// Real Pub/Sub may lease a nacked message again for an extension that reaches it after the nack, holding back its
    /// retry for a whole ack deadline. The emulator ignores such an extension (the message comes back at once either
    /// way), so the test checks the order in which the calls reach Pub/Sub, as well as that the message comes back.
    /// </remarks>
    [Fact]
    public async Task A_nack_waits_for_an_extension_of_the_same_lease_already_in_flight_and_the_message_comes_back_at_once()
    {
        // A subscription without a retry policy: a nacked message is available again at once.
        var topic = PubSubNames.Topic(_project.Id, "events");
        var subscription = PubSubNames.Subscription(_project.Id, Subscription);
        await new Publisher.PublisherClient(_project.Channel).CreateTopicAsync(new Topic { Name = topic });
        var plain = new Subscriber.SubscriberClient(_project.Channel);
        await plain.CreateSubscriptionAsync(new Google.Cloud.PubSub.V1.Subscription { Name = subscription, Topic = topic, AckDeadlineSeconds = 10 });
        var published = await new Publisher.PublisherClient(_project.Channel).PublishAsync(new PublishRequest
        {
            Topic = topic,
            Messages = { new PubsubMessage { Data = ByteString.CopyFromUtf8("payload") } },
        });

        // One message at a time, and a lease extended every 10 s.
        var wire = new SlowExtensions();
        var options = Options.Create(new IngestionOptions
        {
            Subscription = Subscription,
            PullMode = PullMode.Unary,
            Streams = 1,
            MaxOutstandingMessages = 1,
            AckDeadlineSeconds = AckDeadlineSeconds,
        });
        var source = new SubscriptionSource(new Subscriber.SubscriberClient(_project.Channel.Intercept(wire)), options,
            new GoogleCloudOptions { ProjectId = _project.Id, PubSubEmulatorHost = stack.PubSubHost }, NullLogger<SubscriptionSource>.Instance);
        using var stopping = new CancellationTokenSource();
        var running = source.RunAsync(stopping.Token);
        try
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var message = await source.Messages.ReadAsync(wait.Token);
            Assert.Equal(published.MessageIds.Single(), message.Message.MessageId);

            // The next extension of its lease is held back until the nack is answered (or 3 s), so it reaches
            // Pub/Sub after a nack that does not wait for it; the source's own pulls stop, so only this test pulls.
            wire.Hold(message.AckId);
            await wire.ExtensionHeld.WaitAsync(TimeSpan.FromSeconds(30));
            await source.NackAsync([message], CancellationToken.None);
            await wire.ExtensionAnswered.WaitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine(string.Join(", ", wire.Order));

            // The nack left only once Pub/Sub had answered the extension, so it is the last word on the lease.
            Assert.Equal(["extension sent", "extension answered", "nack sent"], wire.Order);
            // And the message is back at once, well before the 30 s lease the extension asked for would run out.
            var redelivered = await PullAsync(plain, subscription, TimeSpan.FromSeconds(10));
            Assert.True(redelivered is not null, "the nacked message was not redelivered within 10 s");
            Assert.Equal(message.Message.MessageId, redelivered.Message.MessageId);
        }
        finally
        {
            await stopping.CancelAsync();
            await running;
        }
    }

    private static async Task<ReceivedMessage?> PullAsync(Subscriber.SubscriberClient subscriber, string subscription, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 1 }, deadline: deadline);
                if (pulled.ReceivedMessages.Count > 0)
                {
                    return pulled.ReceivedMessages[0];
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
            {
            }
        }

        return null;
    }

    /// <summary>
    /// On the source's call invoker: once <see cref="Hold"/> names an ack id, the next extension that includes it
    /// waits before it leaves until a nack has been answered (at most 3 s), and pulls answer empty without reaching
    /// the emulator.
    /// </summary>
    private sealed class SlowExtensions : Interceptor
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _nackAnswered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly List<string> _order = [];
        private string? _ackId;

        public Task ExtensionHeld => _held.Task;

        public Task ExtensionAnswered => _answered.Task;

        public List<string> Order
        {
            get
            {
                lock (_order)
                {
                    return [.. _order];
                }
            }
        }

        public void Hold(string ackId) => Volatile.Write(ref _ackId, ackId);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
            AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (Volatile.Read(ref _ackId) is not { } ackId)
            {
                return continuation(request, context);
            }

            return request switch
            {
                ModifyAckDeadlineRequest { AckDeadlineSeconds: > 0 } extension when extension.AckIds.Contains(ackId) && _held.TrySetResult() =>
                    Later(ExtendAsync(() => continuation(request, context).ResponseAsync)),
                ModifyAckDeadlineRequest { AckDeadlineSeconds: 0 } nack when nack.AckIds.Contains(ackId) =>
                    Later(NackAsync(() => continuation(request, context).ResponseAsync)),
                PullRequest => Later(EmptyPullAsync<TResponse>()),
                _ => continuation(request, context),
            };
        }

        private async Task<T> ExtendAsync<T>(Func<Task<T>> send)
        {
            await Task.WhenAny(_nackAnswered.Task, Task.Delay(TimeSpan.FromSeconds(3)));
            Record("extension sent");
            try
            {
                return await send();
            }
            finally
            {
                Record("extension answered");
                _answered.TrySetResult();
            }
        }

        private async Task<T> NackAsync<T>(Func<Task<T>> send)
        {
            Record("nack sent");
            try
            {
                return await send();
            }
            finally
            {
                _nackAnswered.TrySetResult();
            }
        }

        private static async Task<T> EmptyPullAsync<T>()
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, "pulls are paused by the test"));
        }

        private void Record(string step)
        {
            lock (_order)
            {
                _order.Add(step);
            }
        }

        private static AsyncUnaryCall<T> Later<T>(Task<T> response) =>
            new(response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }
}
