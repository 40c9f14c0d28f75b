using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using Google.Cloud.PubSub.V1;
using Google.Protobuf;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// Publishes outbox records to <c>chat-events</c>, in as many requests as Pub/Sub's limits need; returns once Pub/Sub
/// has accepted them all.
/// </summary>
internal sealed class ChatEventPublisher(Publisher.PublisherClient publisher, GoogleCloudOptions options)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    // Pub/Sub refuses a publish request over 10 MB or 1,000 messages, and a refused request would be retried forever.
    private const int MaxRequestBytes = 8 * 1024 * 1024;
    private const int MaxRequestMessages = 1_000;

    public async Task PublishAsync(IReadOnlyList<OutboxRecord> records, CancellationToken cancellationToken)
    {
        var topic = PubSubNames.Topic(options.RequireProjectId(), ResourceNames.ChatEventsTopic);
        var request = new PublishRequest { Topic = topic };
        var bytes = 0;
        foreach (var record in records)
        {
            var message = new PubsubMessage { Data = ByteString.CopyFrom(record.Data) };
            foreach (var (key, value) in record.Attributes)
            {
                message.Attributes[key] = value;
            }

            var size = message.CalculateSize();
            if (request.Messages.Count > 0 && (bytes + size > MaxRequestBytes || request.Messages.Count == MaxRequestMessages))
            {
                await SendAsync(request, cancellationToken);
                request = new PublishRequest { Topic = topic };
                bytes = 0;
            }

            request.Messages.Add(message);
            bytes += size;
        }

        if (request.Messages.Count > 0)
        {
            await SendAsync(request, cancellationToken);
        }
    }

    private Task SendAsync(PublishRequest request, CancellationToken cancellationToken) =>
        publisher.PublishAsync(request, deadline: DateTime.UtcNow.Add(Deadline), cancellationToken: cancellationToken).ResponseAsync;
}
