using Google.Cloud.Firestore.V1;
using Google.Cloud.PubSub.V1;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace ChatStack.GoogleCloud;

/// <summary>Registers the generated Google Cloud clients a service uses, emulator or real per configuration.</summary>
public static class GoogleCloudServiceCollectionExtensions
{
    /// <summary>Tag of readiness checks on Google Cloud dependencies.</summary>
    public const string ReadyTag = "ready";

    /// <summary>The <see cref="GoogleCloudOptions"/> of this process, read once from configuration.</summary>
    public static IHostApplicationBuilder AddGoogleCloudOptions(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(sp => GoogleCloudOptions.FromConfiguration(sp.GetRequiredService<IConfiguration>()));
        return builder;
    }

    /// <summary>
    /// Pub/Sub publisher and subscriber clients sharing one channel. No readiness check on purpose: a Pub/Sub
    /// outage must not take a service out of rotation (the chat API keeps serving and delivers later).
    /// </summary>
    public static IHostApplicationBuilder AddPubSubClients(this IHostApplicationBuilder builder)
    {
        builder.AddGoogleCloudOptions();
        builder.Services.TryAddSingleton(sp => new PubSubChannel(GoogleCloudChannels.Create(
            sp.GetRequiredService<GoogleCloudOptions>().PubSubEmulatorHost, GoogleCloudChannels.PubSubEndpoint)));
        builder.Services.TryAddSingleton(sp => new Publisher.PublisherClient(sp.GetRequiredService<PubSubChannel>().Channel));
        builder.Services.TryAddSingleton(sp => new Subscriber.SubscriberClient(sp.GetRequiredService<PubSubChannel>().Channel));
        builder.Services.TryAddSingleton<PubSub.IPubSubAdmin, PubSub.GrpcPubSubAdmin>();
        return builder;
    }

    /// <summary>The Firestore client, with the routing header real Firestore expects, and a readiness check.</summary>
    public static IHostApplicationBuilder AddFirestoreClient(this IHostApplicationBuilder builder)
    {
        builder.AddGoogleCloudOptions();
        builder.Services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<GoogleCloudOptions>();
            var channel = GoogleCloudChannels.Create(options.FirestoreEmulatorHost, GoogleCloudChannels.FirestoreEndpoint);
            var database = $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}";
            return new Firestore.FirestoreClient(channel.WithRoutingHeader($"database={Uri.EscapeDataString(database)}"));
        });
        // One instance, so that its probe is shared between checks (FirestoreHealthCheck.ReuseFor).
        builder.Services.TryAddSingleton(sp => new FirestoreHealthCheck(sp.GetRequiredService<Firestore.FirestoreClient>(),
            sp.GetRequiredService<GoogleCloudOptions>(), sp.GetService<TimeProvider>() ?? TimeProvider.System));
        builder.Services.AddHealthChecks().AddCheck<FirestoreHealthCheck>("firestore", tags: [ReadyTag]);
        return builder;
    }

    /// <summary>Holds the Pub/Sub channel so both clients share its connections and it is disposed once.</summary>
    internal sealed class PubSubChannel(Grpc.Net.Client.GrpcChannel channel) : IDisposable
    {
        public Grpc.Net.Client.GrpcChannel Channel { get; } = channel;

        public void Dispose() => Channel.Dispose();
    }
}
