using ChatStack.ChatApi.DualWrite;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace ChatStack.Tests.DualWrite;

/// <summary>The relay's publisher against the Pub/Sub emulator.</summary>
[Collection(StackCollection.Name)]
public sealed class ChatEventPublisherTests(StackFixture stack) : IDisposable
{
    private readonly string _project = $"pb-{Guid.NewGuid():N}"[..20];
    private readonly Grpc.Net.Client.GrpcChannel _channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task A_backlog_larger_than_a_publish_request_may_be_is_sent_in_requests_pub_sub_accepts()
    {
        var topic = PubSubNames.Topic(_project, ResourceNames.ChatEventsTopic);
        var subscription = PubSubNames.Subscription(_project, "all");
        await new Publisher.PublisherClient(_channel).CreateTopicAsync(new Topic { Name = topic });
        var subscriber = new Subscriber.SubscriberClient(_channel);
        await subscriber.CreateSubscriptionAsync(new Subscription { Name = subscription, Topic = topic, AckDeadlineSeconds = 60 });

        // 30 events of 600 KB (long answers with content capture on): 18 MB, over Pub/Sub's 10 MB per request.
        var records = Enumerable.Range(0, 30)
            .Select(i => new OutboxRecord($"e{i}", new byte[600 * 1024], new Dictionary<string, string> { ["event_id"] = $"e{i}" }, DateTimeOffset.UtcNow))
            .ToList();
        var requests = new RequestSizes();
        var publisher = new ChatEventPublisher(new Publisher.PublisherClient(_channel.Intercept(requests)), new GoogleCloudOptions { ProjectId = _project });

        await publisher.PublishAsync(records, CancellationToken.None);

        Assert.True(requests.Sizes.Count > 1);
        Assert.All(requests.Sizes, size => Assert.InRange(size, 1, 10_000_000));
        var received = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (received.Count < records.Count && DateTime.UtcNow < deadline)
        {
            var pulled = await subscriber.PullAsync(new PullRequest { Subscription = subscription, MaxMessages = 10 }, deadline: DateTime.UtcNow.AddSeconds(5));
            received.UnionWith(pulled.ReceivedMessages.Select(m => m.Message.Attributes["event_id"]));
            if (pulled.ReceivedMessages.Count > 0)
            {
                await subscriber.AcknowledgeAsync(new AcknowledgeRequest { Subscription = subscription, AckIds = { pulled.ReceivedMessages.Select(m => m.AckId) } });
            }
        }

        Assert.Equal(records.Select(r => r.EventId).ToHashSet(), received);
    }

    /// <summary>Records the size of each publish request on the wire.</summary>
    private sealed class RequestSizes : Interceptor
    {
        public List<int> Sizes { get; } = [];

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
            AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (request is PublishRequest publish)
            {
                lock (Sizes)
                {
                    Sizes.Add(publish.CalculateSize());
                }
            }

            return continuation(request, context);
        }
    }
}
