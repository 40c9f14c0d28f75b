using ChatStack.GoogleCloud;

namespace Microsoft.Extensions.Hosting;

internal static class ChatStorageExtensions
{
    /// <summary>The hot path (Firestore, which gates readiness) and the cold path (Pub/Sub, which never does).</summary>
    public static IHostApplicationBuilder AddChatStorage(this IHostApplicationBuilder builder)
    {
        builder.AddFirestoreClient();
        builder.AddPubSubClients();
        return builder;
    }
}
