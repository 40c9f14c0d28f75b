using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.Hosting;

internal static class ChatStorageExtensions
{
    /// <summary>The hot path (Firestore, which gates readiness) and the cold path (Pub/Sub, which never does).</summary>
    public static IHostApplicationBuilder AddChatStorage(this IHostApplicationBuilder builder)
    {
        builder.AddFirestoreClient();
        builder.AddPubSubClients();
        builder.Services.TryAddSingleton<IChatSessionStore, FirestoreChatSessionStore>();
        // The Pub/Sub outbox replaces this sink; until then persisted messages go nowhere else.
        builder.Services.TryAddSingleton<IChatEventSink, NoOpChatEventSink>();
        return builder;
    }
}
