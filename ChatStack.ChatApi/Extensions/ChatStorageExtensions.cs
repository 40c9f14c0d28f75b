using ChatStack.ChatApi.Sessions;
using ChatStack.GoogleCloud;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.Hosting;

internal static class ChatStorageExtensions
{
    /// <summary>
    /// The hot path (Firestore, which gates readiness) and the cold path (a Firestore outbox relayed to Pub/Sub,
    /// which never does).
    /// </summary>
    public static IHostApplicationBuilder AddChatStorage(this IHostApplicationBuilder builder)
    {
        builder.AddFirestoreClient();
        builder.AddPubSubClients();
        builder.Services.TryAddSingleton<IChatSessionStore, FirestoreChatSessionStore>();
        builder.Services.TryAddSingleton(sp => ChatStack.ChatApi.DualWrite.DualWriteOptions.From(sp.GetRequiredService<IConfiguration>()));
        builder.Services.TryAddSingleton<ChatStack.ChatApi.DualWrite.ChatEventOutbox>();
        builder.Services.TryAddSingleton<ChatStack.ChatApi.DualWrite.OutboxSignal>();
        builder.Services.TryAddSingleton<ChatStack.ChatApi.DualWrite.FirestoreOutbox>();
        builder.Services.AddHostedService<ChatStack.ChatApi.DualWrite.OutboxRelay>();
        return builder;
    }
}
