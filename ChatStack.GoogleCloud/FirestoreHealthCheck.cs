using Google.Cloud.Firestore.V1;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChatStack.GoogleCloud;

/// <summary>Ready when Firestore answers a read: a missing document is an answer, an unreachable server is not.</summary>
/// <remarks>
/// A batch read reports a missing document as a result (<c>missing</c>) where GetDocument throws NotFound, so a
/// healthy probe costs one read and no exception.
/// </remarks>
internal sealed class FirestoreHealthCheck(Firestore.FirestoreClient client, GoogleCloudOptions options, TimeProvider time) : IHealthCheck
{
    /// <summary>A document nobody writes: reading it proves the database answers.</summary>
    private const string ProbeDocument = "_health/probe";

    /// <summary>
    /// How long one probe answers for. <c>/health</c> is public (Cloud Run and the AppHost probe it) and each probe is
    /// a billed read: without this, anyone could turn requests into Firestore reads at no cost to them.
    /// </summary>
    internal static readonly TimeSpan ReuseFor = TimeSpan.FromSeconds(5);

    private sealed record Probe(Lazy<Task<HealthCheckResult>> Result, DateTimeOffset StartedAt);

    private Probe? _last;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        // Checks at the same time share the probe in flight; a finished one answers until it is ReuseFor old. Not
        // the caller's token: a caller that gives up must not cancel the probe others wait on (its deadline ends it).
        var now = time.GetUtcNow();
        while (true)
        {
            var last = Volatile.Read(ref _last);
            if (last is not null && (!last.Result.Value.IsCompleted || now - last.StartedAt < ReuseFor))
            {
                return last.Result.Value.WaitAsync(cancellationToken);
            }

            var fresh = new Probe(new Lazy<Task<HealthCheckResult>>(ProbeAsync), now);
            if (Interlocked.CompareExchange(ref _last, fresh, last) == last)
            {
                return fresh.Result.Value.WaitAsync(cancellationToken);
            }
        }
    }

    private async Task<HealthCheckResult> ProbeAsync()
    {
        var database = $"projects/{options.RequireProjectId()}/databases/{options.FirestoreDatabase}";
        var request = new BatchGetDocumentsRequest { Database = database, Documents = { $"{database}/documents/{ProbeDocument}" } };
        try
        {
            using var call = client.BatchGetDocuments(request, deadline: DateTime.UtcNow.AddSeconds(3));
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
            return HealthCheckResult.Healthy();
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
        {
            // Reached and answered: a permission to read this probe document is not what readiness is about.
            return HealthCheckResult.Healthy();
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            // A missing document is a result (`missing`), so NOT_FOUND is the database itself: never created, or
            // FIRESTORE_DATABASE / GOOGLE_CLOUD_PROJECT naming the wrong one. A deployment step, not the network.
            return HealthCheckResult.Unhealthy(
                $"Firestore has no database '{options.FirestoreDatabase}' in project '{options.RequireProjectId()}' (NOT_FOUND: {e.Status.Detail})", e);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Unknown
            or StatusCode.Internal or StatusCode.Cancelled)
        {
            return HealthCheckResult.Unhealthy($"Firestore did not answer: {e.Status.Detail}", e);
        }
        catch (RpcException e)
        {
            // Reached, and refused for a reason of its own (credentials, an invalid name): its status says which.
            return HealthCheckResult.Unhealthy($"Firestore refused the probe with {e.StatusCode}: {e.Status.Detail}", e);
        }
    }
}
