using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.Stack;

[Collection(StackCollection.Name)]
public class StackStartupTests(StackFixture stack, ITestOutputHelper output)
{
    private const string ProjectId = "chatstack-local";

    [Fact]
    public void Every_resource_is_healthy_and_the_provisioner_finished_successfully()
    {
        output.WriteLine($"AppHost start to all-healthy: {stack.TimeToHealthy.TotalSeconds:0.0} s ({Environment.ProcessorCount} cores)");
        var notifications = stack.App.Services.GetRequiredService<ResourceNotificationService>();
        foreach (var name in StackFixture.HealthyResources)
        {
            Assert.True(notifications.TryGetCurrentState(name, out var resource), name);
            Assert.Equal(HealthStatus.Healthy, resource.Snapshot.HealthStatus);
        }

        Assert.True(notifications.TryGetCurrentState("provisioner", out var provisioner));
        Assert.Equal(KnownResourceStates.Finished, provisioner.Snapshot.State?.Text);
        Assert.Equal(0, provisioner.Snapshot.ExitCode);
    }

    [Fact]
    public async Task The_pubsub_emulator_answers_generated_clients_and_holds_what_the_provisioner_created()
    {
        using var channel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
        var publisher = new Publisher.PublisherClient(channel);
        var subscriber = new Subscriber.SubscriberClient(channel);

        var subscription = await subscriber.GetSubscriptionAsync(new GetSubscriptionRequest
        {
            Subscription = PubSubNames.Subscription(ProjectId, ResourceNames.ChatEventsSubscription),
        });
        Assert.Equal(PubSubNames.Topic(ProjectId, ResourceNames.ChatEventsTopic), subscription.Topic);
        Assert.Equal(60, subscription.AckDeadlineSeconds);

        var published = await publisher.PublishAsync(new PublishRequest
        {
            Topic = PubSubNames.Topic(ProjectId, ResourceNames.DeadLetterTopic),
            Messages = { new PubsubMessage { Data = ByteString.CopyFromUtf8("ping") } },
        });
        Assert.Single(published.MessageIds);
        var pulled = await subscriber.PullAsync(new PullRequest
        {
            Subscription = PubSubNames.Subscription(ProjectId, ResourceNames.DeadLetterSubscription),
            MaxMessages = 10,
        }, deadline: DateTime.UtcNow.AddSeconds(10));
        var message = Assert.Single(pulled.ReceivedMessages, m => m.Message.MessageId == published.MessageIds[0]);
        Assert.Equal("ping", message.Message.Data.ToStringUtf8());
        await subscriber.AcknowledgeAsync(new AcknowledgeRequest
        {
            Subscription = PubSubNames.Subscription(ProjectId, ResourceNames.DeadLetterSubscription),
            AckIds = { message.AckId },
        });
    }

    [Fact]
    public async Task The_firestore_emulator_answers_generated_clients()
    {
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var firestore = new Firestore.FirestoreClient(channel);
        var documentName = $"projects/{ProjectId}/databases/(default)/documents/startup-tests/{Guid.NewGuid():N}";

        await firestore.CommitAsync(new CommitRequest
        {
            Database = $"projects/{ProjectId}/databases/(default)",
            Writes =
            {
                new Write
                {
                    Update = new Document { Name = documentName, Fields = { ["greeting"] = new Google.Cloud.Firestore.V1.Value { StringValue = "hello" } } },
                },
            },
        });
        var document = await firestore.GetDocumentAsync(new GetDocumentRequest { Name = documentName });
        Assert.Equal("hello", document.Fields["greeting"].StringValue);
    }

    [Fact]
    public async Task Services_are_handed_the_emulators_and_project_by_the_apphost()
    {
        var model = stack.App.Services.GetRequiredService<DistributedApplicationModel>();
        var api = model.Resources.OfType<ProjectResource>().Single(r => r.Name == "chat-api");
#pragma warning disable CS0618 // reading what the resource was launched with
        var environment = await api.GetEnvironmentVariableValuesAsync();
#pragma warning restore CS0618
        Assert.Equal(ProjectId, environment["GOOGLE_CLOUD_PROJECT"]);
        Assert.Equal(stack.PubSubHost, environment["PUBSUB_EMULATOR_HOST"]);
        Assert.Equal(stack.FirestoreHost, environment["FIRESTORE_EMULATOR_HOST"]);
    }
}
