using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>Publishes outbox records to <c>chat-events</c> in one request; returns once Pub/Sub has accepted them all.</summary>
internal sealed class ChatEventPublisher(Publisher.PublisherClient publisher, GoogleCloudOptions options)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    public async Task PublishAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken)
    {
        var request = new PublishRequest { Topic = PubSubNames.Topic(options.RequireProjectId(), ResourceNames.ChatEventsTopic) };
        foreach (var record in records)
        {
            var message = new PubsubMessage { Data = ByteString.CopyFrom(record.Data) };
            foreach (var (key, value) in record.Attributes)
            {
                message.Attributes[key] = value;
            }
            request.Messages.Add(message);
        }

        await publisher.PublishAsync(request, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken);
    }
}
