using Google.Cloud.Firestore.V1;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChatStack.GoogleCloud;

/// <summary>Ready when Firestore answers a read: a missing document is an answer, an unreachable server is not.</summary>
internal sealed class FirestoreHealthCheck(Firestore.FirestoreClient client, GoogleCloudOptions options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var name = $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}/documents/_health/probe";
        try
        {
            await client.GetDocumentAsync(new GetDocumentRequest { Name = name },
                deadline: DateTime.UtcNow.AddSeconds(3), cancellationToken: cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.PermissionDenied)
        {
            // Reached and answered: a permission to read this probe document is not what readiness is about.
            return HealthCheckResult.Healthy();
        }
        catch (RpcException e)
        {
            return HealthCheckResult.Unhealthy($"Firestore did not answer: {e.Status.Detail}", e);
        }
    }
}
