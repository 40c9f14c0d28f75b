using Google.Apis.Auth.OAuth2;

namespace ChatStack.GoogleCloud;

/// <summary>Application default credentials for the real Google APIs, or an error that says how to provide them.</summary>
public static class GoogleCloudCredentials
{
    /// <summary>The one OAuth scope ChatStack asks for: Pub/Sub, Firestore and BigQuery all accept it.</summary>
    public const string CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";

    /// <exception cref="GoogleCloudCredentialsException">No credentials were found, or the configured ones could not be read.</exception>
    public static async Task<GoogleCredential> ApplicationDefaultAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return (await GoogleCredential.GetApplicationDefaultAsync(cancellationToken).ConfigureAwait(false)).CreateScoped(CloudPlatformScope);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            throw new GoogleCloudCredentialsException(e.Message, e);
        }
    }
}

/// <summary>
/// A machine set-up problem, not a failure of the API called: Google.Apis.Auth's own message names no fix for local
/// runs, and gRPC reports it as the call's Internal error, as if the service had answered.
/// </summary>
public sealed class GoogleCloudCredentialsException(string reason, Exception innerException) : Exception(
    $"No Google Cloud credentials: {reason.ReplaceLineEndings(" ")} Run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or set the *_EMULATOR_HOST variables to use the emulators.",
    innerException);

/// <summary>
/// Adds an OAuth token from application default credentials to REST calls of the real services; emulators (and test
/// servers) get none. The credential is read once per process and shared by every client.
/// </summary>
public sealed class GoogleAuthHandler(bool useCredentials) : DelegatingHandler
{
    private static readonly SemaphoreSlim Lock = new(1, 1);
    private static ITokenAccess? _credential;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (useCredentials)
        {
            var credential = await CredentialAsync(cancellationToken);
            var token = await credential.GetAccessTokenForRequestAsync(request.RequestUri?.ToString(), cancellationToken);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        return await base.SendAsync(request, cancellationToken);
    }

    private static async Task<ITokenAccess> CredentialAsync(CancellationToken cancellationToken)
    {
        if (_credential is { } cached)
        {
            return cached;
        }

        await Lock.WaitAsync(cancellationToken);
        try
        {
            return _credential ??= await GoogleCloudCredentials.ApplicationDefaultAsync(cancellationToken);
        }
        finally
        {
            Lock.Release();
        }
    }
}
