using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Apis;
using ChatStack.ChatApi.Sessions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using Google.Cloud.Firestore.V1;
using Grpc.Core;
using FsValue = Google.Cloud.Firestore.V1.Value;

namespace ChatStack.ChatApi.Limits;

/// <summary>
/// The windows in Firestore, one document per user (<c>user_limits/{userId}</c>: the admitted requests, the spends,
/// the holds of runs in progress), shared by every instance of the API. Each change reads the document and writes it
/// back on the condition that nobody wrote it in between (its update time), reading again when somebody did: two
/// instances admitting the same user's requests at once count both, and never more than the limit.
/// </summary>
/// <remarks>
/// A chat pays one read and one commit when it is admitted (its budget held in the same write) and one of each when
/// its run settles; no transaction, so no lock is held across a round trip. A write whose outcome was not told (a lost
/// answer) is tried again only by reading first: every change is keyed by an id (<see cref="UserUsage"/>), so one
/// already applied is not applied twice.
/// </remarks>
internal sealed class FirestoreUserUsageStore(Firestore.FirestoreClient client, GoogleCloudOptions gcp, LimitOptions options) : IUserUsageStore
{
    // Contention on one user's document: instances, or one user's parallel requests, writing it at once. Each write
    // that loses reads again; N racers take up to N rounds, so the bound is a time, the one a request waits on a store.
    private static readonly TimeSpan MaxContention = FirestoreRetry.Brief;

    private string Database => $"projects/{gcp.RequireProjectId()}/databases/{gcp.FirestoreDatabase}";

    /// <summary>A two-hundred-and-eighty-eighth of the token window (five minutes of a day): at most ~290 spends a document.</summary>
    public TimeSpan SpendResolution => options.TokenWindow / 288;

    public TimeSpan? HoldLifetime => options.HoldLifetime;

    internal string DocumentName(string userId) =>
        $"{Database}/documents/{ResourceNames.UserLimitsCollection}/{DocumentId(userId)}";

    /// <summary>The user id itself when it is a safe document id (most are); otherwise its SHA-256, which no safe id can be ('~').</summary>
    internal static string DocumentId(string userId) =>
        Ids.IsSafe(userId) ? userId : "sha256~" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(userId)));

    public async Task<T> UpdateAsync<T>(string userId, Func<UserUsage, T> change, CancellationToken cancellationToken)
    {
        var name = DocumentName(userId);
        var started = Stopwatch.GetTimestamp();
        for (var round = 1; ; round++)
        {
            var document = await ReadAsync(name, cancellationToken);
            var usage = document is null ? new UserUsage() : Decode(document);
            var result = change(usage);
            if (!usage.Changed)
            {
                return result;
            }

            var write = new Write
            {
                Update = Encode(name, userId, usage),
                // Nobody wrote it since it was read (or it still does not exist).
                CurrentDocument = document is null ? new Precondition { Exists = false } : new Precondition { UpdateTime = document.UpdateTime },
            };
            try
            {
                using var span = Telemetry.FirestoreSpans.StartCommit(ResourceNames.UserLimitsCollection, Database, 1, 0);
                // Safe to repeat after an unclear failure: a repeat that finds its own write fails the precondition,
                // and the next round reads that write and finds the change applied.
                await Telemetry.FirestoreSpans.Trace(span, FirestoreRetry.CommitAsync(
                    deadline => client.CommitAsync(new CommitRequest { Database = Database, Writes = { write } }, deadline: deadline, cancellationToken: cancellationToken).ResponseAsync,
                    RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
                return result;
            }
            catch (ChatStoreRefusedException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.AlreadyExists)
            {
                if (Stopwatch.GetElapsedTime(started) > MaxContention)
                {
                    throw new ChatStoreUnavailableException(
                        $"The limits of user '{userId}' changed under {round} writes in a row; Firestore said {e.StatusCode}: {e.Detail}", e);
                }

                // Somebody else's write came first: read theirs and decide again, after a short jittered pause that
                // spreads the racers out.
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 * Math.Min(round, 10))), cancellationToken);
            }
        }
    }

    /// <summary>The user's document, or null when there is none (a batch read tells an absent document as a result, not NOT_FOUND).</summary>
    private Task<Document?> ReadAsync(string name, CancellationToken cancellationToken) =>
        FirestoreRetry.ReadAsync(async deadline =>
        {
            using var call = client.BatchGetDocuments(new BatchGetDocumentsRequest { Database = Database, Documents = { name } },
                deadline: deadline, cancellationToken: cancellationToken);
            Document? found = null;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                found = call.ResponseStream.Current.Found ?? found;
            }

            return found;
        }, cancellationToken);

    // Each list is one JSON string: Firestore indexes every array element and map field it is given, and these would be
    // hundreds of index entries a write, never queried. As text they are one each, and still read plainly in a console.
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static Document Encode(string name, string userId, UserUsage usage) => new()
    {
        Name = name,
        Fields =
        {
            ["user_id"] = Str(userId),
            ["requests"] = Str(JsonSerializer.Serialize(usage.Requests, Json)),
            ["spends"] = Str(JsonSerializer.Serialize(usage.Spends, Json)),
            ["holds"] = Str(JsonSerializer.Serialize(usage.Holds, Json)),
        },
    };

    private static UserUsage Decode(Document document)
    {
        var usage = new UserUsage();
        usage.Requests.AddRange(Read<List<AdmittedRequest>>(document, "requests") ?? []);
        usage.Spends.AddRange(Read<List<TokenSpend>>(document, "spends") ?? []);
        foreach (var (id, hold) in Read<Dictionary<string, TokenHeld>>(document, "holds") ?? [])
        {
            usage.Holds[id] = hold;
        }

        // Written in order by this store; sorted anyway, as the rules read the oldest first.
        usage.Requests.Sort((a, b) => a.At.CompareTo(b.At));
        usage.Spends.Sort((a, b) => a.At.CompareTo(b.At));
        return usage;
    }

    private static T? Read<T>(Document document, string field) =>
        document.Fields.TryGetValue(field, out var value) && value.ValueTypeCase == FsValue.ValueTypeOneofCase.StringValue
            ? JsonSerializer.Deserialize<T>(value.StringValue, Json)
            : default;

    private static FsValue Str(string value) => new() { StringValue = value };
}
