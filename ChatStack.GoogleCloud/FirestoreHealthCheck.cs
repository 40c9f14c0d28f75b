using Google.Cloud.Firestore.V1;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChatStack.GoogleCloud;

/// <summary>Ready when Firestore answers a read: a missing document is an answer, an unreachable server is not.</summary>
/// <remarks>
/// A batch read reports a missing document as a result (<c>missing</c>) where GetDocument throws NotFound, so a
/// healthy probe costs one read and no exception.
/// </remarks>
internal sealed class FirestoreHealthCheck(Firestore.FirestoreClient client, GoogleCloudOptions options) : IHealthCheck
{
    /// <summary>A document nobody writes: reading it proves the database answers.</summary>
    private const string ProbeDocument = "_health/probe";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var database = $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}";
        var request = new BatchGetDocumentsRequest { Database = database, Documents = { $"{database}/documents/{ProbeDocument}" } };
        try
        {
            using var call = client.BatchGetDocuments(request, deadline: DateTime.UtcNow.AddSeconds(3), cancellationToken: cancellationToken);
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
            }
            return HealthCheckResult.Healthy();
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
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
