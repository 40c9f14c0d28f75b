using System.Text.Json.Nodes;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Provisioning;

/// <summary>
/// The session list's composite index and the TTL policies, provisioned through the Firestore Admin REST API. No emulator serves that API,
/// so it is a stand-in that answers as the API documents (<see cref="FirestoreAdminServer"/>); Pub/Sub and BigQuery
/// are the emulators. Against the emulators alone the plan has no index (ProvisionerTests' dry run lists every line).
/// </summary>
[Collection(StackCollection.Name)]
public sealed class FirestoreIndexProvisioningTests(StackFixture stack, ITestOutputHelper output)
{
    private readonly string _project = $"fsix-{Guid.NewGuid():N}"[..20];

    private async Task<(int ExitCode, string Output, string Error)> Run(FirestoreAdminServer admin, params string[] args)
    {
        using var clients = new EmulatorClients(stack, _project);
        var result = await clients.ProvisionAsync(args, more: new Dictionary<string, string?>
        {
            ["GoogleCloud:FirestoreAdminEndpoint"] = admin.BaseAddress.ToString(),
            ["FIRESTORE_DATABASE"] = "chats",
        });
        output.WriteLine($"$ provision {string.Join(' ', args)} -> {result.ExitCode}\n{result.Output}{result.Error}");
        return result;
    }

    private string IndexesPath => $"/v1/projects/{_project}/databases/chats/collectionGroups/sessions/indexes";

    [Fact]
    public async Task The_index_is_planned_created_once_in_the_configured_database_and_then_unchanged()
    {
        await using var admin = await FirestoreAdminServer.StartAsync();
        // An index on other fields serves another query: it is no reason to skip this one (and it makes the list two pages).
        admin.Indexes[IndexesPath] = [(JsonObject)JsonNode.Parse("""
            {"name": "x/indexes/other", "queryScope": "COLLECTION", "state": "READY",
             "fields": [{"fieldPath": "user_id", "order": "ASCENDING"}, {"fieldPath": "created_at", "order": "DESCENDING"}, {"fieldPath": "__name__", "order": "DESCENDING"}]}
            """)!];

        var dryRun = await Run(admin, "provision", "--dry-run");
        Assert.Equal(2, dryRun.ExitCode);
        var planned = Assert.Single(dryRun.Output.Split(Environment.NewLine), line => line.Contains("firestore.index"));
        Assert.Matches(@"^  \+ firestore\.index +sessions\(user_id asc, updated_at desc\) +create$", planned);
        Assert.Contains("to create 16, to update 0, unchanged 0", dryRun.Output);
        Assert.DoesNotContain(admin.Requests, request => request.StartsWith("POST", StringComparison.Ordinal));

        Assert.Equal(0, (await Run(admin, "provision")).ExitCode);
        Assert.Equal(2, admin.Indexes[IndexesPath].Count);
        var created = admin.Indexes[IndexesPath][1];
        Assert.Equal("COLLECTION", created["queryScope"]!.GetValue<string>());
        Assert.Equal(["user_id ASCENDING", "updated_at DESCENDING", "__name__ DESCENDING"],
            created["fields"]!.AsArray().Select(f => $"{f!["fieldPath"]} {f["order"]}"));

        // Listed in state CREATING, on the list's second page, with __name__ appended: converged, nothing posted again.
        var again = await Run(admin, "provision");
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("create 0, update 0, unchanged 16, incompatible 0", again.Output);
        Assert.Single(admin.Requests, request => request == $"POST {IndexesPath}");
    }

    [Fact]
    public async Task The_ttl_policies_of_turn_holds_user_limits_and_stream_requests_copies_and_ends_are_planned_enabled_once_and_then_unchanged()
    {
        await using var admin = await FirestoreAdminServer.StartAsync();
        string Field(string group) => $"/v1/projects/{_project}/databases/chats/collectionGroups/{group}/fields/expires_at";

        var dryRun = await Run(admin, "provision", "--dry-run");
        var planned = dryRun.Output.Split(Environment.NewLine).Where(line => line.Contains("firestore.ttl")).ToList();
        Assert.Equal(6, planned.Count);
        Assert.Matches(@"^  \+ firestore\.ttl +session_turns\.expires_at +create$", planned[0]);
        Assert.Matches(@"^  \+ firestore\.ttl +user_limits\.expires_at +create$", planned[1]);
        Assert.Matches(@"^  \+ firestore\.ttl +stream_requests\.expires_at +create$", planned[2]);
        Assert.Matches(@"^  \+ firestore\.ttl +stream_events\.expires_at +create$", planned[3]);
        Assert.Matches(@"^  \+ firestore\.ttl +chunks\.expires_at +create$", planned[4]);
        Assert.Matches(@"^  \+ firestore\.ttl +stream_ends\.expires_at +create$", planned[5]);
        Assert.DoesNotContain(admin.Requests, request => request.StartsWith("PATCH", StringComparison.Ordinal));

        Assert.Equal(0, (await Run(admin, "provision")).ExitCode);
        Assert.Equal("CREATING", admin.Ttl[Field("session_turns")]);
        Assert.Equal("CREATING", admin.Ttl[Field("user_limits")]);
        Assert.Equal("CREATING", admin.Ttl[Field("stream_requests")]);
        Assert.Equal("CREATING", admin.Ttl[Field("chunks")]);
        Assert.Equal("CREATING", admin.Ttl[Field("stream_ends")]);

        // Still building (CREATING) counts as there: nothing patched again.
        admin.Ttl[Field("user_limits")] = "ACTIVE";
        Assert.Equal(0, (await Run(admin, "provision")).ExitCode);
        Assert.Equal(6, admin.Requests.Count(request => request.StartsWith("PATCH", StringComparison.Ordinal)));
        Assert.Contains($"PATCH {Field("session_turns")}?updateMask=ttlConfig", admin.Requests);
    }

    [Fact]
    public async Task An_admin_api_refusal_fails_the_run_with_one_line_saying_what_it_answered()
    {
        await using var admin = await FirestoreAdminServer.StartAsync();
        admin.Failure = (403, "PERMISSION_DENIED", "The caller does not have permission");

        var (exitCode, _, error) = await Run(admin, "provision");

        Assert.Equal(1, exitCode);
        Assert.Equal("Provisioning failed: Firestore Admin API answered 403 PERMISSION_DENIED: The caller does not have permission", error.Trim());
    }
}
