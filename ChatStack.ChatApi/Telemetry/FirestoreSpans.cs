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
        var span = ChatTelemetry.Source.StartActivity($"commit {collection}", ActivityKind.Client);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(DbAttributes.SystemName, DbAttributes.Firestore);
            span.SetTag(DbAttributes.OperationName, "commit");
            span.SetTag(DbAttributes.CollectionName, collection);
            span.SetTag(DbAttributes.Namespace, database);
            span.SetTag(DbAttributes.BatchSize, writes);
            span.SetTag("chatstack.outbox.records", outboxRecords);
        }

        return span;
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
