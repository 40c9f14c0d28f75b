using System.Net;
using System.Text.Json;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Grpc.Core;

namespace ChatStack.Tests.Chat;

/// <summary><c>GET /api/sessions</c> on Kestrel against the stack's real Firestore emulator (a project of its own per host).</summary>
[Collection(StackCollection.Name)]
public class SessionListApiTests(StackFixture stack)
{
    private static readonly Dictionary<string, string?> Fast = new() { ["Chat:Offline:DeltaDelayMs"] = "0" };

    [Fact]
    public async Task The_list_holds_only_the_callers_sessions_most_recently_updated_first_page_by_page()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, Fast);
        var alice = await ChatApiClient.SignInAsync(host.Address, "list-alice");
        var bob = await ChatApiClient.SignInAsync(host.Address, "list-bob");
        var aliceSessions = new List<string>();
        foreach (var message in new[] { "first question", "second question", "third question" })
        {
            await alice.ChatAsync(new { message });
            aliceSessions.Add(alice.LastSessionId!);
        }

        await bob.ChatAsync(new { message = "bob's question" });
        var bobSession = bob.LastSessionId!;

        // Continuing the oldest session makes it the most recently updated.
        await alice.ChatAsync(new { message = "back to the first", session_id = aliceSessions[0] });
        string[] expected = [aliceSessions[0], aliceSessions[2], aliceSessions[1]];

        var first = await alice.GetJsonAsync("/api/sessions?limit=2");
        Assert.Equal(expected[..2], Ids(first));
        var cursor = first.GetProperty("next_cursor").GetString();
        Assert.False(string.IsNullOrEmpty(cursor));

        var second = await alice.GetJsonAsync($"/api/sessions?limit=2&cursor={Uri.EscapeDataString(cursor!)}");
        Assert.Equal(expected[2..], Ids(second));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("next_cursor").ValueKind);

        // The default page holds them all, with the figures GET /api/sessions/{id} has.
        var all = await alice.GetJsonAsync("/api/sessions");
        Assert.Equal(expected, Ids(all));
        var top = all.GetProperty("sessions")[0];
        var single = await alice.GetJsonAsync($"/api/sessions/{expected[0]}");
        Assert.Equal(single.GetProperty("total_tokens").GetInt64(), top.GetProperty("total_tokens").GetInt64());
        Assert.Equal(4, top.GetProperty("message_count").GetInt64());
        Assert.Equal("first question", top.GetProperty("title").GetString());
        var updated = all.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("updated_at").GetDateTimeOffset()).ToList();
        Assert.Equal(updated.OrderDescending(), updated);

        Assert.Equal([bobSession], Ids(await bob.GetJsonAsync("/api/sessions")));
        var carol = await ChatApiClient.SignInAsync(host.Address, "list-carol");
        var empty = await carol.GetJsonAsync("/api/sessions");
        Assert.Empty(Ids(empty));
        Assert.Equal(JsonValueKind.Null, empty.GetProperty("next_cursor").ValueKind);
    }

    [Theory]
    [InlineData("limit=0", "invalid-limit")]
    [InlineData("limit=101", "invalid-limit")]
    [InlineData("limit=-1", "invalid-limit")]
    [InlineData("limit=ten", "invalid-limit")]
    [InlineData("limit=", "invalid-limit")]
    [InlineData("cursor=not*base64", "invalid-cursor")]
    [InlineData("cursor=", "invalid-cursor")]
    [InlineData("cursor=eDp5", "invalid-cursor")] // base64url of "x:y": no timestamp
    [InlineData("cursor=MTI6Li4vb3RoZXI", "invalid-cursor")] // "12:../other": not a session id
    public async Task Bad_paging_parameters_answer_400_problem_details(string query, string code)
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, Fast);
        var client = await ChatApiClient.SignInAsync(host.Address, "list-bad-params");
        using var response = await client.Http.GetAsync($"/api/sessions?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task The_list_needs_a_token()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, Fast);
        using var http = ChatApiClient.CreateHttpClient(host.Address);
        using var response = await http.GetAsync("/api/sessions");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Without_its_firestore_index_the_list_is_a_503_that_says_to_run_the_provisioner_and_chats_go_on()
    {
        // Real Firestore answers the list query this way until the provisioner's index is built; the emulator never does,
        // so its answer is put in front of the emulator here.
        var faults = new FirestoreFaults();
        faults.Fail(request => request is RunQueryRequest { StructuredQuery.From: [{ CollectionId: "sessions" }] }, StatusCode.FailedPrecondition, int.MaxValue,
            detail: "The query requires an index. You can create it here: https://console.firebase.google.com/v1/r/project/p/firestore/indexes?create_composite=x");
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults);
        var client = await ChatApiClient.SignInAsync(host.Address, "list-no-index");
        await client.ChatAsync(new { message = "hello" });

        using var response = await client.Http.GetAsync("/api/sessions");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        (await OpenApiContract.LoadAsync(client.Http)).AssertDeclares(response);
        Assert.Equal(TimeSpan.FromSeconds(60), response.Headers.RetryAfter?.Delta);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("index-not-ready", problem.GetProperty("code").GetString());
        Assert.Contains("Run the provisioner against this project", problem.GetProperty("detail").GetString());
        // Firestore's own message names the project and a console link: for the log, not for clients.
        Assert.DoesNotContain("console.firebase.google.com", problem.GetProperty("detail").GetString());
        Assert.Equal("hello", (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("title").GetString());
    }

    private static string[] Ids(JsonElement page) =>
        page.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToArray();
}
