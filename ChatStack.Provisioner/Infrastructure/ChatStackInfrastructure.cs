using ChatStack.Contracts;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.BigQuery;
using ChatStack.Provisioner.PubSub;

namespace ChatStack.Provisioner.Infrastructure;

/// <summary>Where to provision, and how fast failed deliveries are retried.</summary>
public sealed record ProvisionSettings(string ProjectId, string Dataset, string Location)
{
    /// <summary>Backoff after the first failed delivery; doubles up to <see cref="RetryMaximumBackoff"/>.</summary>
    public TimeSpan RetryMinimumBackoff { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan RetryMaximumBackoff { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>ChatStack's infrastructure, declared once, in the order it must be created.</summary>
public static class ChatStackInfrastructure
{
    /// <summary>Ack deadline of the worker's subscription: a BigQuery insert of one batch fits well inside it.</summary>
    public static readonly int AckDeadlineSeconds = 60;

    public static IReadOnlyList<IInfrastructureResource> Resources(ProvisionSettings settings, IPubSubAdmin pubSub, IBigQueryClient bigQuery)
    {
        var project = settings.ProjectId;
        return
        [
            new TopicResource(pubSub, project, ResourceNames.ChatEventsTopic),
            new TopicResource(pubSub, project, ResourceNames.DeadLetterTopic),
            // Dead letters are only kept while a subscription holds them: a topic alone would drop them.
            new SubscriptionResource(pubSub, project, new SubscriptionSpec(
                ResourceNames.DeadLetterSubscription, ResourceNames.DeadLetterTopic,
                AckDeadlineSeconds, MessageRetention: TimeSpan.FromDays(7))),
            new SubscriptionResource(pubSub, project, new SubscriptionSpec(
                ResourceNames.ChatEventsSubscription, ResourceNames.ChatEventsTopic,
                AckDeadlineSeconds, MessageRetention: TimeSpan.FromDays(7),
                DeadLetterTopicId: ResourceNames.DeadLetterTopic, MaxDeliveryAttempts: ResourceNames.MaxDeliveryAttempts,
                MinimumBackoff: settings.RetryMinimumBackoff, MaximumBackoff: settings.RetryMaximumBackoff)),
            new DatasetResource(bigQuery, settings.Dataset, settings.Location),
            new TableResource(bigQuery, settings.Dataset, WarehouseSchema.ChatEvents),
            new TableResource(bigQuery, settings.Dataset, WarehouseSchema.ToolInvocations),
            new ViewResource(bigQuery, settings.Dataset, WarehouseSchema.SessionsSummary(project, settings.Dataset)),
            new ViewResource(bigQuery, settings.Dataset, WarehouseSchema.ToolUsageSummary(project, settings.Dataset)),
        ];
    }
}
