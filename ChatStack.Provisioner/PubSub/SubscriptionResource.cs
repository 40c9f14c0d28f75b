using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.Infrastructure;
using Google.Cloud.PubSub.V1;
using Google.Protobuf.WellKnownTypes;

namespace ChatStack.Provisioner.PubSub;

/// <summary>The settings of a subscription ChatStack owns.</summary>
public sealed record SubscriptionSpec(
    string SubscriptionId,
    string TopicId,
    int AckDeadlineSeconds,
    TimeSpan MessageRetention,
    string? DeadLetterTopicId = null,
    int MaxDeliveryAttempts = 5,
    TimeSpan? MinimumBackoff = null,
    TimeSpan? MaximumBackoff = null);

/// <summary>A Pub/Sub subscription: created, or updated in place; never moved to another topic.</summary>
public sealed class SubscriptionResource(IPubSubAdmin admin, string projectId, SubscriptionSpec spec) : IInfrastructureResource
{
    public string Kind => "pubsub.subscription";

    public string Name => spec.SubscriptionId;

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken)
    {
        var existing = await admin.GetSubscriptionAsync(PubSubNames.Subscription(projectId, spec.SubscriptionId), cancellationToken);
        if (existing is null)
        {
            return ResourceChange.Create(Kind, Name);
        }

        var desired = Desired();
        if (existing.Topic != desired.Topic)
        {
            // A subscription's topic is fixed at creation: converging would mean deleting it and its backlog.
            return new ResourceChange(Kind, Name, ChangeKind.Incompatible, [new FieldDifference("topic", existing.Topic, desired.Topic)]);
        }

        var differences = new List<FieldDifference>();
        Compare(differences, "ackDeadlineSeconds", existing.AckDeadlineSeconds.ToString(), desired.AckDeadlineSeconds.ToString());
        Compare(differences, "messageRetentionDuration", Format(existing.MessageRetentionDuration), Format(desired.MessageRetentionDuration));
        Compare(differences, "deadLetterPolicy.deadLetterTopic", NullIfEmpty(existing.DeadLetterPolicy?.DeadLetterTopic), NullIfEmpty(desired.DeadLetterPolicy?.DeadLetterTopic));
        Compare(differences, "deadLetterPolicy.maxDeliveryAttempts", Attempts(existing.DeadLetterPolicy), Attempts(desired.DeadLetterPolicy));
        Compare(differences, "retryPolicy.minimumBackoff", Format(existing.RetryPolicy?.MinimumBackoff), Format(desired.RetryPolicy?.MinimumBackoff));
        Compare(differences, "retryPolicy.maximumBackoff", Format(existing.RetryPolicy?.MaximumBackoff), Format(desired.RetryPolicy?.MaximumBackoff));
        Compare(differences, "expirationPolicy.ttl", Ttl(existing.ExpirationPolicy), Ttl(desired.ExpirationPolicy));
        return differences.Count == 0
            ? ResourceChange.Unchanged(Kind, Name)
            : new ResourceChange(Kind, Name, ChangeKind.Update, differences);
    }

    public async Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken)
    {
        if (change.Action == ChangeKind.Create)
        {
            await admin.CreateSubscriptionAsync(Desired(), cancellationToken);
            return;
        }

        var mask = new FieldMask();
        foreach (var path in change.Differences.Select(d => ToMaskPath(d.Field)).Distinct())
        {
            mask.Paths.Add(path);
        }

        await admin.UpdateSubscriptionAsync(Desired(), mask, cancellationToken);
    }

    internal Subscription Desired()
    {
        var subscription = new Subscription
        {
            Name = PubSubNames.Subscription(projectId, spec.SubscriptionId),
            Topic = PubSubNames.Topic(projectId, spec.TopicId),
            AckDeadlineSeconds = spec.AckDeadlineSeconds,
            MessageRetentionDuration = Duration.FromTimeSpan(spec.MessageRetention),
            // Without a policy Pub/Sub deletes a subscription after 31 days without pulls, and the dead-letter hold
            // is never pulled by design; a policy with no TTL never expires.
            ExpirationPolicy = new ExpirationPolicy(),
        };
        if (spec.DeadLetterTopicId is not null)
        {
            subscription.DeadLetterPolicy = new DeadLetterPolicy
            {
                DeadLetterTopic = PubSubNames.Topic(projectId, spec.DeadLetterTopicId),
                MaxDeliveryAttempts = spec.MaxDeliveryAttempts,
            };
        }

        if (spec.MinimumBackoff is { } min && spec.MaximumBackoff is { } max)
        {
            subscription.RetryPolicy = new RetryPolicy { MinimumBackoff = Duration.FromTimeSpan(min), MaximumBackoff = Duration.FromTimeSpan(max) };
        }

        return subscription;
    }

    private static void Compare(List<FieldDifference> differences, string field, string? current, string? desired)
    {
        if (!string.Equals(current, desired, StringComparison.Ordinal))
        {
            differences.Add(new FieldDifference(field, current, desired));
        }
    }

    private static string ToMaskPath(string field) => field switch
    {
        "ackDeadlineSeconds" => "ack_deadline_seconds",
        "messageRetentionDuration" => "message_retention_duration",
        _ when field.StartsWith("deadLetterPolicy", StringComparison.Ordinal) => "dead_letter_policy",
        _ when field.StartsWith("retryPolicy", StringComparison.Ordinal) => "retry_policy",
        _ when field.StartsWith("expirationPolicy", StringComparison.Ordinal) => "expiration_policy",
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "No update mask path for this field."),
    };

    private static string? Attempts(DeadLetterPolicy? policy) =>
        policy is null || string.IsNullOrEmpty(policy.DeadLetterTopic) ? null : policy.MaxDeliveryAttempts.ToString();

    // Real Pub/Sub always reports the policy in force (a 31-day TTL by default). Only the emulator reports none, for a
    // subscription created without one; as "never" it stays unchanged, since the emulator refuses to update the policy.
    private static string Ttl(ExpirationPolicy? policy) => Format(policy?.Ttl) ?? "never";

    private static string? Format(Duration? duration) => duration is null ? null : $"{duration.ToTimeSpan().TotalSeconds:0.###}s";

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
