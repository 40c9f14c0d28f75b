using System.Text.Json;
using ChatStack.ChatApi.DualWrite;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Cloud.PubSub.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.Tests.DualWrite;

/// <summary>
/// What the relay meets in a bad hour (a count past its deadline, a bug, a malformed document, Pub/Sub failing as
/// the API stops) costs no event: each test ends with every record in the real Pub/Sub emulator.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class OutboxRelayRecoveryTests(StackFixture stack) : IDisposable
{
    private static readonly DateTimeOffset Written = DateTimeOffset.UtcNow.AddMinutes(-5);

    private readonly string _project = $"rr-{Guid.NewGuid():N}"[..20];
    private readonly Grpc.Net.Client.GrpcChannel _firestoreChannel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
    private readonly Grpc.Net.Client.GrpcChannel _pubSubChannel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);

    private string Database => $"projects/{_project}/databases/(default)";

    private Firestore.FirestoreClient Firestore => new(_firestoreChannel);

    public void Dispose()
    {
        _firestoreChannel.Dispose();
        _pubSubChannel.Dispose();
    }

    /// <summary>
    /// A backlog bigger than a batch makes the relay count the outbox for its depth gauge. The count failing (as an
    /// unbounded one does past its deadline during a large backlog) or any unexpected exception must not stop delivery.
    /// </summary>
    [Theory]
    [InlineData(OutboxSeam.CountFails)]
    [InlineData(OutboxSeam.FirstReadThrows)]
    public async Task A_failing_depth_count_or_an_unexpected_exception_does_not_stop_delivery(OutboxSeam seam)
    {
        var subscription = await CreateTopicAsync();
        var records = Enumerable.Range(0, 5).Select(i => Record($"ev-{i}", Written.AddSeconds(i))).ToList();
        await WriteAsync(records.Select(r => FirestoreOutbox.ToWrite(Database, r)));

        var outbox = (FailingOutbox?)null;
        await using (await ChatApiHost.StartAsync(stack.FirestoreHost, Settings(), configure: builder =>
        {
            // Batches of 2, so every read of the 5 records but the last comes back full and asks for a count.
            builder.Services.Replace(ServiceDescriptor.Singleton(DualWriteOptions.From(builder.Configuration) with { BatchSize = 2 }));
            builder.Services.Replace(ServiceDescriptor.Singleton<IOutboxStore>(sp =>
                outbox = new FailingOutbox(ActivatorUtilities.CreateInstance<FirestoreOutbox>(sp), seam)));
        }))
        {
            Assert.Equal(records.Select(r => r.EventId).ToHashSet(), await ReceiveAsync(subscription, records.Count));
        }

        Assert.True(outbox!.Failures > 0, "the seam failed at least once");
    }

    /// <summary>
    /// A document the relay cannot publish (here: no data) goes to <c>outbox_dead</c> with the reason, once, said in
    /// an error naming it; the documents beside it are delivered, and the relay keeps running.
    /// </summary>
    [Fact]
    public async Task A_malformed_outbox_document_is_moved_aside_and_the_others_are_delivered()
    {
        var subscription = await CreateTopicAsync();
        var good = Enumerable.Range(0, 3).Select(i => Record($"ev-{i}", Written.AddSeconds(i))).ToList();
        var bad = new Document
        {
            Name = $"{Database}/documents/{FirestoreOutbox.Collection}/bad-1",
            Fields =
            {
                // The oldest, so it heads every read.
                ["created_at"] = new FsValue { TimestampValue = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Written.AddSeconds(-1)) },
                ["attributes"] = new FsValue { MapValue = new MapValue { Fields = { ["event_type"] = new FsValue { StringValue = "user_message" } } } },
            },
        };
        await WriteAsync(good.Select(r => FirestoreOutbox.ToWrite(Database, r)).Append(new Write { Update = bad }));

        var logs = new FakeLogCollector();
        await using (await ChatApiHost.StartAsync(stack.FirestoreHost, Settings(), configure: b => b.Logging.AddProvider(new FakeLoggerProvider(logs))))
        {
            Assert.Equal(good.Select(r => r.EventId).ToHashSet(), await ReceiveAsync(subscription, good.Count));

            // Still running: a record written now is delivered too.
            var late = Record("ev-late", DateTimeOffset.UtcNow);
            await WriteAsync([FirestoreOutbox.ToWrite(Database, late)]);
            Assert.Equal(["ev-late"], await ReceiveAsync(subscription, 1));
        }

        var dead = await Firestore.GetDocumentAsync(new GetDocumentRequest { Name = $"{Database}/documents/outbox_dead/bad-1" });
        Assert.Equal("user_message", dead.Fields["attributes"].MapValue.Fields["event_type"].StringValue);
        Assert.Contains("data", dead.Fields["outbox_problem"].StringValue, StringComparison.Ordinal);
        var outbox = await Firestore.ListDocumentsAsync(new ListDocumentsRequest { Parent = $"{Database}/documents", CollectionId = FirestoreOutbox.Collection });
        Assert.Empty(outbox.Documents);
        var error = Assert.Single(logs.GetSnapshot(), r => r.Level >= LogLevel.Error);
        Assert.Contains("bad-1", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// With Firestore writes off the events live in memory and shutdown drains them. A Pub/Sub failure in the drain
    /// is retried, not the end of it; one arriving as the stop begins still leaves the drain to run.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_shutdown_drain_survives_a_pubsub_failure_at_the_stop(bool failureArrivesAsTheStopBegins)
    {
        var subscription = await CreateTopicAsync();
        var gate = new PublishGate(failureArrivesAsTheStopBegins);
        var logs = new FakeLogCollector();
        var api = await ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>(Settings())
        {
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["Chat:Offline:DeltaDelayMs"] = "0",
        }, configure: builder =>
        {
            builder.Logging.AddProvider(new FakeLoggerProvider(logs));
            builder.Services.Replace(ServiceDescriptor.Singleton(sp =>
                new ChatEventPublisher(new Publisher.PublisherClient(_pubSubChannel.Intercept(gate)), sp.GetRequiredService<GoogleCloudOptions>())));
        });
        try
        {
            var chat = await ChatApiClient.SignInAsync(api.Address, "drain-user");
            await chat.ChatAsync(new { message = "Hello there" });
            await chat.ChatAsync(new { session_id = chat.LastSessionId, message = "And again" });
            await gate.RelayTried.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            await api.DisposeAsync();
        }

        // Two turns, no tools: four events, all delivered by the drain.
        Assert.Equal(4, (await ReceiveAsync(subscription, 4)).Count);
        Assert.Empty(logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).Select(r => r.Message));
        // The drain published; after its one failure, when that was the test, it tried again.
        Assert.InRange(gate.DrainCalls, failureArrivesAsTheStopBegins ? 1 : 2, int.MaxValue);
    }

    private Dictionary<string, string?> Settings() => new()
    {
        ["GOOGLE_CLOUD_PROJECT"] = _project,
        ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
    };

    private static OutboxRecord Record(string id, DateTimeOffset createdAt) =>
        new(id, [1, 2, 3], new Dictionary<string, string> { ["event_id"] = id }, createdAt);

    private async Task WriteAsync(IEnumerable<Write> writes)
    {
        var commit = new CommitRequest { Database = Database };
        commit.Writes.AddRange(writes);
        await Firestore.CommitAsync(commit);
    }

    /// <summary>The project's <c>chat-events</c> topic and a subscription that sees everything published to it.</summary>
    private async Task<string> CreateTopicAsync()
    {
        var topic = PubSubNames.Topic(_project, ResourceNames.ChatEventsTopic);
        var subscription = PubSubNames.Subscription(_project, "all");
        await new Publisher.PublisherClient(_pubSubChannel).CreateTopicAsync(new Topic { Name = topic });
        await new Subscriber.SubscriberClient(_pubSubChannel).CreateSubscriptionAsync(new Subscription { Name = subscription, Topic = topic, AckDeadlineSeconds = 60 });
        return subscription;
    }

    /// <summary>The event ids of the next <paramref name="count"/> distinct messages, or of those that came within 60 s.</summary>
    private async Task<HashSet<string>> ReceiveAsync(string subscription, int count)
    {
        var subscriber = new Subscriber.SubscriberClient(_pubSubChannel);
        var received = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (received.Count < count && DateTime.UtcNow < deadline)
        {
            PullResponse pulled;
            try
            {
                pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 100 }, deadline: DateTime.UtcNow.AddSeconds(5));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
            {
                continue;
            }

            // Redelivery is possible (at least once); the set keeps each event once.
            received.UnionWith(pulled.ReceivedMessages.Select(m => EventId(m.Message)));
            if (pulled.ReceivedMessages.Count > 0)
            {
                await subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = subscription, AckIds = { pulled.ReceivedMessages.Select(m => m.AckId) } });
            }
            else
            {
                await Task.Delay(200);
            }
        }

        return received;
    }

    // The test's records carry their id as an attribute; a chat's events carry it in their JSON.
    private static string EventId(PubsubMessage message) => message.Attributes.TryGetValue("event_id", out var id)
        ? id
        : JsonDocument.Parse(message.Data.ToStringUtf8()).RootElement.GetProperty("event_id").GetString()!;

    public enum OutboxSeam
    {
        /// <summary>Every count ends as a count past its deadline does.</summary>
        CountFails,

        /// <summary>The first read throws what no Google call does: a bug.</summary>
        FirstReadThrows,
    }

    /// <summary>The real Firestore outbox, failing where <see cref="OutboxSeam"/> says.</summary>
    private sealed class FailingOutbox(IOutboxStore inner, OutboxSeam seam) : IOutboxStore
    {
        private int _failures;

        public int Failures => Volatile.Read(ref _failures);

        public bool Durable => inner.Durable;

        public bool HasRoom => inner.HasRoom;

        public Task<IReadOnlyList<OutboxRecord>> ReadAsync(int limit, CancellationToken cancellationToken) =>
            seam == OutboxSeam.FirstReadThrows && Interlocked.Increment(ref _failures) == 1
                ? throw new InvalidOperationException("a bug in the relay's path")
                : inner.ReadAsync(limit, cancellationToken);

        public Task RemoveAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken) => inner.RemoveAsync(records, cancellationToken);

        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            if (seam != OutboxSeam.CountFails)
            {
                return inner.CountAsync(cancellationToken);
            }

            Interlocked.Increment(ref _failures);
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded"));
        }
    }

    /// <summary>
    /// Pub/Sub as the relay sees it: its loop's publishes fail (at once, or only when the stop begins, with
    /// UNAVAILABLE rather than CANCELLED); the drain's first publish fails once unless the loop's failure was the
    /// test. The loop's calls carry its stopping token, the drain's a token of its own: the first call tells them apart.
    /// </summary>
    private sealed class PublishGate(bool failAsTheStopBegins) : Interceptor
    {
        private readonly Lock _gate = new();
        private CancellationToken? _loop;
        private int _drainCalls;

        public TaskCompletionSource RelayTried { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int DrainCalls => Volatile.Read(ref _drainCalls);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
            AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            var token = context.Options.CancellationToken;
            lock (_gate)
            {
                _loop ??= token;
            }

            if (token == _loop)
            {
                RelayTried.TrySetResult();
                return Failed<TResponse>(failAsTheStopBegins ? UnavailableWhenStopped<TResponse>(token)
                    : Task.FromException<TResponse>(new RpcException(new Status(token.IsCancellationRequested ? StatusCode.Cancelled : StatusCode.Unavailable, "test"))));
            }

            return Interlocked.Increment(ref _drainCalls) == 1 && !failAsTheStopBegins
                ? Failed<TResponse>(Task.FromException<TResponse>(new RpcException(new Status(StatusCode.Unavailable, "transient"))))
                : continuation(request, context);
        }

        private static async Task<TResponse> UnavailableWhenStopped<TResponse>(CancellationToken token)
        {
            await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
            throw new RpcException(new Status(StatusCode.Unavailable, "connection reset as the stop began"));
        }

        private static AsyncUnaryCall<TResponse> Failed<TResponse>(Task<TResponse> response) =>
            new(response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => new Metadata(), () => { });
    }
}
