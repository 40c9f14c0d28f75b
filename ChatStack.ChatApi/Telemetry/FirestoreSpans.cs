using System.Diagnostics;
using ChatStack.Contracts.Telemetry;

namespace ChatStack.ChatApi.Telemetry;

/// <summary>
/// <c>commit {collection}</c> spans (database conventions) around the chat API's Firestore commits, so a trace
/// shows which commit carried a message and its outbox records; the gRPC call is its child.
/// </summary>
internal static class FirestoreSpans
{
    public static Activity? StartCommit(string collection, string database, int writes, int outboxRecords)
    {
        if (!ChatTelemetry.Source.HasListeners())
        {
            return null;
        }

        // Given at start, so samplers see them.
        List<KeyValuePair<string, object?>> tags =
        [
            new(DbAttributes.SystemName, DbAttributes.Firestore),
            new(DbAttributes.OperationName, "commit"),
            new(DbAttributes.CollectionName, collection),
            new(DbAttributes.Namespace, database),
            new("chatstack.outbox.records", outboxRecords),
        ];
        if (writes >= 2)
        {
            // The conventions count only two or more writes as a batch: a single write is a plain commit.
            tags.Add(new(DbAttributes.BatchSize, writes));
        }

        return ChatTelemetry.Source.StartActivity($"commit {collection}", ActivityKind.Client, parentContext: default, tags);
    }

    /// <summary>Awaits the commit (with its retries) and marks the span failed if it threw.</summary>
    public static async Task Trace(Activity? span, Task commit)
    {
        try
        {
            await commit;
        }
        catch (Exception e)
        {
            span.SetError(e.GetType().FullName ?? e.GetType().Name, e.GetBaseException().Message);
            throw;
        }
    }
}
