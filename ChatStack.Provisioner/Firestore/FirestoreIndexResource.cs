using ChatStack.GoogleCloud.FirestoreAdmin;
using ChatStack.Provisioner.Infrastructure;

namespace ChatStack.Provisioner.Firestore;

/// <summary>
/// A composite index of a Firestore collection group. Real Firestore refuses a query that needs one until it exists
/// (FAILED_PRECONDITION); the emulator needs none and has no admin API. Creating starts a build that takes minutes:
/// the run does not wait for it, and the index shows as unchanged (state CREATING) from then on.
/// </summary>
public sealed class FirestoreIndexResource(IFirestoreIndexAdmin admin, FirestoreCollectionGroup group, FirestoreIndex desired) : IInfrastructureResource
{
    public string Kind => "firestore.index";

    public string Name => $"{group.Id}({string.Join(", ", desired.Fields.Select(f => $"{f.FieldPath} {(f.Order == "DESCENDING" ? "desc" : "asc")}"))})";

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken) =>
        (await admin.ListIndexesAsync(group, cancellationToken)).Any(Matches)
            ? ResourceChange.Unchanged(Kind, Name)
            : ResourceChange.Create(Kind, Name);

    public async Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken)
    {
        try
        {
            await admin.CreateIndexAsync(group, desired, cancellationToken);
        }
        catch (FirestoreAdminException e) when (e.Status == "ALREADY_EXISTS")
        {
            // Another run created it between this run's plan and now: converged all the same.
        }
    }

    // Firestore appends __name__ (in the last field's direction) to every composite index; an index with the same
    // fields in the same order and scope serves the same queries.
    private bool Matches(FirestoreIndex index) =>
        index.QueryScope == desired.QueryScope
        && index.Fields.Where(f => f.FieldPath != "__name__").Select(f => (f.FieldPath, f.Order))
            .SequenceEqual(desired.Fields.Select(f => (f.FieldPath, f.Order)));
}
