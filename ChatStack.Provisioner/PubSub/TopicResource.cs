using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.Infrastructure;
using Google.Cloud.PubSub.V1;

namespace ChatStack.Provisioner.PubSub;

/// <summary>A Pub/Sub topic. Topics carry nothing ChatStack tunes, so existing is enough.</summary>
public sealed class TopicResource(IPubSubAdmin admin, string projectId, string topicId) : IInfrastructureResource
{
    public string Kind => "pubsub.topic";

    public string Name => topicId;

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken) =>
        await admin.GetTopicAsync(PubSubNames.Topic(projectId, topicId), cancellationToken) is null
            ? ResourceChange.Create(Kind, Name)
            : ResourceChange.Unchanged(Kind, Name);

    public Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken) =>
        admin.CreateTopicAsync(new Topic { Name = PubSubNames.Topic(projectId, topicId) }, cancellationToken);
}
