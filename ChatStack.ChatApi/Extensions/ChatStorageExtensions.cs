using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using ChatStack.GoogleCloud;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.Hosting;

internal static class ChatStorageExtensions
{
    /// <summary>
    /// The hot path (Firestore, which gates readiness) and the cold path (an outbox relayed to Pub/Sub, which
    /// never does), each as its switch says. Firestore is not even configured when its writes are off.
    /// </summary>
    public static IHostApplicationBuilder AddChatStorage(this IHostApplicationBuilder builder)
    {
        var options = DualWriteOptions.From(builder.Configuration);
        var services = builder.Services;
        services.TryAddSingleton(options);
        // Checked here, at start-up: a missing or short key stops the API before it accepts a chat.
        services.TryAddSingleton(ContentHash.From(builder.Configuration, builder.Environment.IsDevelopment(), required: options.Enabled));
        services.TryAddSingleton<ChatEventOutbox>();
        services.TryAddSingleton<OutboxSignal>();
        services.AddHostedService<StoragePathsNotice>();

        if (options.FirestoreWrite)
        {
            builder.AddFirestoreClient();
            services.TryAddSingleton<IChatSessionStore, FirestoreChatSessionStore>();
            services.TryAddSingleton<IOutboxStore, FirestoreOutbox>();
            // A stop or a resume that reaches an instance not running the stream is passed on through Firestore.
            services.TryAddSingleton<FirestoreStreamRelay>();
            services.AddHostedService(sp => sp.GetRequiredService<FirestoreStreamRelay>());
        }
        else
        {
            builder.AddGoogleCloudOptions();
            services.TryAddSingleton<MemoryOutbox>();
            services.TryAddSingleton<IOutboxStore>(sp => sp.GetRequiredService<MemoryOutbox>());
            services.TryAddSingleton<IChatSessionStore>(sp => new InMemoryChatSessionStore(sp.GetRequiredService<MemoryOutbox>()));
        }

        if (options.Enabled)
        {
            builder.AddPubSubClients();
            services.TryAddSingleton<ChatEventPublisher>();
            services.AddHostedService<OutboxRelay>();
        }

        return builder;
    }
}
