using ChatStack.GoogleCloud.FirestoreAdmin;
using ChatStack.Provisioner.Infrastructure;

namespace ChatStack.Provisioner.Firestore;

/// <summary>
/// A TTL policy: Firestore deletes a document of the collection group some time (typically within a day) after its
/// timestamp <paramref name="fieldPath"/> has passed. For documents whose every entry has expired by then, which nothing
/// else would ever delete. Like an index, enabling it starts an operation that the run does not wait for.
/// </summary>
public sealed class FirestoreTtlResource(IFirestoreIndexAdmin admin, FirestoreCollectionGroup group, string fieldPath) : IInfrastructureResource
{
    public string Kind => "firestore.ttl";

    public string Name => $"{group.Id}.{fieldPath}";

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken) =>
        await admin.GetTtlStateAsync(group, fieldPath, cancellationToken) is null
            ? ResourceChange.Create(Kind, Name)
            : ResourceChange.Unchanged(Kind, Name);

    public Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken) => admin.EnableTtlAsync(group, fieldPath, cancellationToken);
}
