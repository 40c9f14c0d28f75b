using ChatStack.Contracts;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.FirestoreAdmin;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.BigQuery;
using ChatStack.Provisioner.Firestore;
using ChatStack.Provisioner.PubSub;

namespace ChatStack.Provisioner.Infrastructure;

/// <summary>Where to provision, and how fast failed deliveries are retried.</summary>
public sealed record ProvisionSettings(string ProjectId, string Dataset, string Location)
{
    /// <summary>The Firestore database whose indexes are provisioned (FIRESTORE_DATABASE).</summary>
    public string FirestoreDatabase { get; init; } = "(default)";

    /// <summary>Backoff after the first failed delivery; doubles up to <see cref="RetryMaximumBackoff"/>.</summary>
    public TimeSpan RetryMinimumBackoff { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan RetryMaximumBackoff { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>ChatStack's infrastructure, declared once, in the order it must be created.</summary>
public static class ChatStackInfrastructure
{
    /// <summary>Ack deadline of the worker's subscription: a BigQuery insert of one batch fits well inside it.</summary>
    public static readonly int AckDeadlineSeconds = 60;

    /// <summary>
    /// The session list's query (<c>user_id == ? ORDER BY updated_at DESC</c>, in the chat API's Firestore store) needs
    /// this composite index on real Firestore.
    /// </summary>
    public static readonly FirestoreIndex SessionsByUser = new("COLLECTION",
    [
        new FirestoreIndexField("user_id", "ASCENDING"),
        new FirestoreIndexField("updated_at", "DESCENDING"),
    ]);

    /// <param name="firestoreIndexes">The Firestore Admin API, or null where there is none (the emulator needs no indexes).</param>
    public static IReadOnlyList<IInfrastructureResource> Resources(ProvisionSettings settings, IPubSubAdmin pubSub, IBigQueryClient bigQuery,
        IFirestoreIndexAdmin? firestoreIndexes = null)
    {
        var project = settings.ProjectId;
        FirestoreCollectionGroup Group(string id) => new(project, settings.FirestoreDatabase, id);
        IInfrastructureResource[] firestore = firestoreIndexes is null ? [] :
        [
            new FirestoreIndexResource(firestoreIndexes, Group(ResourceNames.SessionsCollection), SessionsByUser),
            // Documents that outlive their use: a turn's hold left by an instance that died, a user's limits once every
            // window in them has passed, requests about a stream whose instance died first, copies of streams resumed
            // on another instance, where streams that ended ran. Each carries the time after which it means nothing.
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.SessionTurnsCollection), ResourceNames.ExpiresAtField),
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.UserLimitsCollection), ResourceNames.ExpiresAtField),
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.StreamRequestsCollection), ResourceNames.ExpiresAtField),
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.StreamEventsCollection), ResourceNames.ExpiresAtField),
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.StreamChunksCollection), ResourceNames.ExpiresAtField),
            new FirestoreTtlResource(firestoreIndexes, Group(ResourceNames.StreamEndsCollection), ResourceNames.ExpiresAtField),
        ];
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
            .. firestore,
        ];
    }
}
