using Google.Apis.Auth.OAuth2;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace ChatStack.GoogleCloud;

/// <summary>
/// Makes the gRPC channel for one Google API: the emulator (insecure, no credentials) when its host is set,
/// otherwise the real service over TLS with application default credentials.
/// </summary>
public static class GoogleCloudChannels
{
    /// <summary>The real Pub/Sub endpoint.</summary>
    public const string PubSubEndpoint = "https://pubsub.googleapis.com";

    /// <summary>The real Firestore endpoint.</summary>
    public const string FirestoreEndpoint = "https://firestore.googleapis.com";

    /// <summary>A channel to <paramref name="emulatorHost"/> if set, else to <paramref name="realEndpoint"/>.</summary>
    public static GrpcChannel Create(string? emulatorHost, string realEndpoint, Func<GoogleCredential>? credential = null)
    {
        if (!string.IsNullOrWhiteSpace(emulatorHost))
        {
            return GrpcChannel.ForAddress(EmulatorAddress(emulatorHost), new GrpcChannelOptions
            {
                Credentials = ChannelCredentials.Insecure,
                // Chat events can be large; the emulator accepts Pub/Sub's 10 MB limit.
                MaxReceiveMessageSize = 16 * 1024 * 1024,
            });
        }

        var lazyCredential = new Lazy<Task<ICredential>>(async () =>
        {
            var resolved = credential is null
                ? await GoogleCloudCredentials.ApplicationDefaultAsync().ConfigureAwait(false)
                : credential().CreateScoped(GoogleCloudCredentials.CloudPlatformScope);
            return resolved.UnderlyingCredential;
        });
        var callCredentials = CallCredentials.FromInterceptor(async (context, metadata) =>
        {
            var accessToken = await (await lazyCredential.Value.ConfigureAwait(false))
                .GetAccessTokenForRequestAsync(context.ServiceUrl, context.CancellationToken).ConfigureAwait(false);
            metadata.Add("authorization", $"Bearer {accessToken}");
        });
        return GrpcChannel.ForAddress(realEndpoint, new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Create(ChannelCredentials.SecureSsl, callCredentials),
            MaxReceiveMessageSize = 16 * 1024 * 1024,
        });
    }

    /// <summary><c>http://host:port</c> from the <c>host:port</c> form the <c>*_EMULATOR_HOST</c> variables use.</summary>
    public static Uri EmulatorAddress(string emulatorHost) =>
        emulatorHost.Contains("://", StringComparison.Ordinal) ? new Uri(emulatorHost) : new Uri($"http://{emulatorHost}");

    /// <summary>Adds the routing header Google's front ends use to route a request to its resource.</summary>
    public static CallInvoker WithRoutingHeader(this GrpcChannel channel, string routingParams) =>
        channel.Intercept(metadata =>
        {
            metadata.Add("x-goog-request-params", routingParams);
            return metadata;
        });
}
