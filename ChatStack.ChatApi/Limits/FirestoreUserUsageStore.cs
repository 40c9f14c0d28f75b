using System.Collections.Concurrent;
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
/// the holds of runs in progress), shared by every instance of the API. Each change is written on the condition that
/// nobody wrote the document since it was read (its update time), and decided again from a new read when somebody
/// did: two instances admitting the same user's requests at once count both, and never more than the limit.
/// </summary>
/// <remarks>
/// A chat pays one commit when it is admitted (its budget held in the same write) and one when its run settles, as
/// long as no other instance wrote the user's document in between: each instance keeps the copy it last wrote or
/// read and commits on its update time without reading first. A stale copy fails the commit and is read again; a
/// refusal is never decided from a copy. No transaction, so no lock is held in Firestore; on one instance, one
/// user's changes wait for each other (a gate per user) rather than race on the same copy. A write whose
/// outcome was not told (a lost answer) is decided again only from a read: every change is keyed by an id
/// (<see cref="UserUsage"/>), so one already applied is not applied twice.
/// </remarks>
internal sealed class FirestoreUserUsageStore(Firestore.FirestoreClient client, GoogleCloudOptions gcp, LimitOptions options) : IUserUsageStore
{
    // Contention on one user's document: instances, or one user's parallel requests, writing it at once. Each write
    // that loses reads again; N racers take up to N rounds, so the bound is a time, the one a request waits on a store.
    private static readonly TimeSpan MaxContention = FirestoreRetry.Brief;

    // Users whose document this instance keeps a copy of: mostly a few hundred bytes, ~20 KB at most (a full request
    // window and a day of spends), so at most ~20 MB.
    private const int MaxKnownUsers = 1024;

    private readonly ConcurrentDictionary<string, Document> _known = new(StringComparer.Ordinal);

    // One change at a time per user on this instance: its own requests would otherwise race each other on the same
    // copy, and each loser pays a failed commit and a read (three round trips where waiting for the winner costs one).
    private readonly Dictionary<string, Gate> _gates = new(StringComparer.Ordinal);

    // Each list is one JSON string: Firestore indexes every array element and map field it is given, and these would be
    // hundreds of index entries a write, never queried. As text they are one each, and still read plainly in a console.
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

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
        Gate? gate;
        lock (_gates)
        {
            if (!_gates.TryGetValue(name, out gate))
            {
                _gates[name] = gate = new Gate();
            }

            gate.Users++;
        }

        try
        {
            await gate.Lock.WaitAsync(cancellationToken);
            try
            {
                return await UpdateUnderGateAsync(name, userId, change, cancellationToken);
            }
            finally
            {
                gate.Lock.Release();
            }
        }
        finally
        {
            lock (_gates)
            {
                if (--gate.Users == 0)
                {
                    _gates.Remove(name);
                    gate.Lock.Dispose();
                }
            }
        }
    }

    private sealed class Gate
    {
        public SemaphoreSlim Lock { get; } = new(1, 1);

        /// <summary>Changes waiting or under way; the gate is dropped with the last.</summary>
        public int Users { get; set; }
    }

    private async Task<T> UpdateUnderGateAsync<T>(string name, string userId, Func<UserUsage, T> change, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        // The document as this instance last wrote or read it: while nobody else wrote it since, a change commits
        // without reading first (one round trip, not two). A stale copy costs a failed commit and a read.
        var fromCache = _known.TryGetValue(name, out var document);
        if (!fromCache)
        {
            document = await ReadAsync(name, cancellationToken);
        }

        for (var round = 1; ; round++)
        {
            var usage = document is null ? new UserUsage() : Decode(document);
            var result = change(usage);
            if (!usage.Changed)
            {
                if (fromCache)
                {
                    // A refusal (or a reading) is only as good as what it read: from a copy, it could miss a slot
                    // given back or a hold settled elsewhere, so it is decided again from the document itself.
                    (document, fromCache) = (await ReadAsync(name, cancellationToken), false);
                    round--;
                    continue;
                }

                Remember(name, document);
                return result;
            }

            var written = Encode(name, userId, usage);
            var write = new Write
            {
                Update = written,
                // Nobody wrote it since it was read (or it still does not exist).
                CurrentDocument = document is null ? new Precondition { Exists = false } : new Precondition { UpdateTime = document.UpdateTime },
            };
            try
            {
                using var span = Telemetry.FirestoreSpans.StartCommit(ResourceNames.UserLimitsCollection, Database, 1, 0);
                CommitResponse? response = null;
                // Safe to repeat after an unclear failure: a repeat that finds its own write fails the precondition,
                // and the next round reads that write and finds the change applied.
                await Telemetry.FirestoreSpans.Trace(span, FirestoreRetry.CommitAsync(
                    async deadline => response = await client.CommitAsync(new CommitRequest { Database = Database, Writes = { write } }, deadline: deadline, cancellationToken: cancellationToken),
                    RetrySafety.Safe, FirestoreRetry.Brief, cancellationToken));
                written.UpdateTime = response!.WriteResults[0].UpdateTime;
                Remember(name, written);
                return result;
            }
            // FAILED_PRECONDITION also when the copy's document was deleted meanwhile (its TTL passed, or by hand): read
            // again, it starts anew.
            catch (ChatStoreRefusedException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.AlreadyExists)
            {
                if (Stopwatch.GetElapsedTime(started) > MaxContention)
                {
                    throw new ChatStoreUnavailableException(
                        $"The limits of user '{userId}' changed under {round} writes in a row; Firestore said {e.StatusCode}: {e.Detail}", e);
                }

                // Somebody else's write came first (or the copy was stale): read theirs and decide again; after a
                // lost race, first a short jittered pause that spreads the racers out.
                if (!fromCache)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 * Math.Min(round, 10))), cancellationToken);
                }

                (document, fromCache) = (await ReadAsync(name, cancellationToken), false);
            }
        }
    }

    private void Remember(string name, Document? document)
    {
        if (document is null)
        {
            _known.TryRemove(name, out _);
            return;
        }

        // Bounded like the token counter's piece cache: full, it starts over (a miss costs one read).
        if (_known.Count >= MaxKnownUsers)
        {
            _known.Clear();
        }

        _known[name] = document;
    }

    private Task<Document?> ReadAsync(string name, CancellationToken cancellationToken) =>
        FirestoreRetry.ReadDocumentAsync(client, Database, name, cancellationToken);

    private Document Encode(string name, string userId, UserUsage usage) => new()
    {
        Name = name,
        Fields =
        {
            ["user_id"] = Str(userId),
            ["requests"] = Str(JsonSerializer.Serialize(usage.Requests, Json)),
            ["spends"] = Str(JsonSerializer.Serialize(usage.Spends, Json)),
            ["holds"] = Str(JsonSerializer.Serialize(usage.Holds, Json)),
            // The TTL field (the provisioner's policy on real Firestore): past it the document counts nothing, and a
            // user who never comes back leaves nothing behind.
            [ResourceNames.ExpiresAtField] = new FsValue { TimestampValue = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(usage.Expiry(options)) },
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

        // The rules read the oldest first; entries that different instances appended carry their own clocks, which
        // can differ by a little, so the lists are put in order here.
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
