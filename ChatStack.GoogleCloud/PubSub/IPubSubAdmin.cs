using Google.Cloud.PubSub.V1;
using Google.Protobuf.WellKnownTypes;

namespace ChatStack.GoogleCloud.PubSub;

/// <summary>The Pub/Sub administration the provisioner needs. Null from a getter means "does not exist".</summary>
public interface IPubSubAdmin
{
    Task<Topic?> GetTopicAsync(string topicName, CancellationToken cancellationToken);

    Task<Topic> CreateTopicAsync(Topic topic, CancellationToken cancellationToken);

    Task<Topic> UpdateTopicAsync(Topic topic, FieldMask updateMask, CancellationToken cancellationToken);

    Task<Subscription?> GetSubscriptionAsync(string subscriptionName, CancellationToken cancellationToken);

    Task<Subscription> CreateSubscriptionAsync(Subscription subscription, CancellationToken cancellationToken);

    Task<Subscription> UpdateSubscriptionAsync(Subscription subscription, FieldMask updateMask, CancellationToken cancellationToken);
}

/// <summary><see cref="IPubSubAdmin"/> over the generated gRPC clients.</summary>
public sealed class GrpcPubSubAdmin(Publisher.PublisherClient publisher, Subscriber.SubscriberClient subscriber) : IPubSubAdmin
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public async Task<Topic?> GetTopicAsync(string topicName, CancellationToken cancellationToken)
    {
        try
        {
            return await publisher.GetTopicAsync(new GetTopicRequest { Topic = topicName }, deadline: Deadline(), cancellationToken: cancellationToken);
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<Topic> CreateTopicAsync(Topic topic, CancellationToken cancellationToken) =>
        await publisher.CreateTopicAsync(topic, deadline: Deadline(), cancellationToken: cancellationToken);

    public async Task<Topic> UpdateTopicAsync(Topic topic, FieldMask updateMask, CancellationToken cancellationToken) =>
        await publisher.UpdateTopicAsync(new UpdateTopicRequest { Topic = topic, UpdateMask = updateMask }, deadline: Deadline(), cancellationToken: cancellationToken);

    public async Task<Subscription?> GetSubscriptionAsync(string subscriptionName, CancellationToken cancellationToken)
    {
        try
        {
            return await subscriber.GetSubscriptionAsync(new GetSubscriptionRequest { Subscription = subscriptionName }, deadline: Deadline(), cancellationToken: cancellationToken);
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<Subscription> CreateSubscriptionAsync(Subscription subscription, CancellationToken cancellationToken) =>
        await subscriber.CreateSubscriptionAsync(subscription, deadline: Deadline(), cancellationToken: cancellationToken);

    public async Task<Subscription> UpdateSubscriptionAsync(Subscription subscription, FieldMask updateMask, CancellationToken cancellationToken) =>
        await subscriber.UpdateSubscriptionAsync(
            new UpdateSubscriptionRequest { Subscription = subscription, UpdateMask = updateMask }, deadline: Deadline(), cancellationToken: cancellationToken);

    private static DateTime Deadline() => DateTime.UtcNow + Timeout;
}

/// <summary>Resource names in the form Pub/Sub wants.</summary>
public static class PubSubNames
{
    public static string Topic(string projectId, string topicId) => $"projects/{projectId}/topics/{topicId}";

    public static string Subscription(string projectId, string subscriptionId) => $"projects/{projectId}/subscriptions/{subscriptionId}";
}
