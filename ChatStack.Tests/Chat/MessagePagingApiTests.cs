using System.Net;
using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Chat;

/// <summary><c>GET /api/sessions/{id}/messages</c> page by page, on Kestrel, against the real Firestore emulator and with the in-memory store.</summary>
[Collection(StackCollection.Name)]
public class MessagePagingApiTests(StackFixture stack)
{
    public static TheoryData<bool> Stores => new() { true, false };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Pages_joined_by_their_next_links_are_the_whole_history_in_order(bool firestore)
    {
        await using var host = await StartAsync(firestore);
        var alice = await ChatApiClient.SignInAsync(host.Address, "paging-alice");
        await alice.ChatAsync(new { message = "What is 6*7?" });
        var session = alice.LastSessionId!;
        await alice.ChatAsync(new { session_id = session, message = "And what time is it in Europe/Paris?" });
        await alice.ChatAsync(new { session_id = session, message = "Thanks, that is all." });
        var all = Ids(await alice.GetJsonAsync($"/api/sessions/{session}/messages"));
        Assert.True(all.Count >= 8, $"Expected user, tool and assistant messages over three turns, got {all.Count}.");

        var paged = new List<string>();
        string? next = $"/api/sessions/{session}/messages?limit=3";
        var pages = 0;
        while (next is not null)
        {
            using var response = await alice.Http.GetAsync(next);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = Ids(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
            Assert.InRange(page.Count, 1, 3);
            paged.AddRange(page);
            pages++;
            next = response.Headers.TryGetValues("Link", out var links) ? NextLink(links.Single()) : null;
        }

        Assert.Equal(all, paged);
        Assert.Equal((all.Count + 2) / 3, pages);

        // after alone: the rest, in one page of up to 100.
        using var rest = await alice.Http.GetAsync($"/api/sessions/{session}/messages?after={all[2]}");
        Assert.Equal(all[3..], Ids(JsonDocument.Parse(await rest.Content.ReadAsStringAsync()).RootElement));
        Assert.False(rest.Headers.Contains("Link"));
        Assert.Empty(Ids(await alice.GetJsonAsync($"/api/sessions/{session}/messages?after={all[^1]}&limit=5")));

        var bob = await ChatApiClient.SignInAsync(host.Address, "paging-bob");
        using var foreign = await bob.Http.GetAsync($"/api/sessions/{session}/messages?limit=2");
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Without_limit_a_long_history_comes_a_hundred_messages_at_a_time(bool firestore)
    {
        await using var host = await StartAsync(firestore);
        var client = await ChatApiClient.SignInAsync(host.Address, "paging-long");
        var session = await client.ChatTurnsAsync(51);

        using var first = await client.Http.GetAsync($"/api/sessions/{session}/messages");
        var page = Ids(JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement);
        Assert.Equal(100, page.Count);
        var next = NextLink(Assert.Single(first.Headers.GetValues("Link")));
        Assert.Equal($"/api/sessions/{session}/messages?limit=100&after={page[^1]}", next);

        using var second = await client.Http.GetAsync(next);
        var rest = JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(2, rest.GetArrayLength());
        Assert.False(second.Headers.Contains("Link"));
        Assert.Equal("Say hello, number 51.", rest[0].GetProperty("content").GetString());
        Assert.Equal(page.Concat(Ids(rest)), Ids(await client.GetJsonAsync($"/api/sessions/{session}/messages?limit=500")));
    }

    [Theory]
    [InlineData("limit=0", "invalid-limit")]
    [InlineData("limit=501", "invalid-limit")]
    [InlineData("limit=ten", "invalid-limit")]
    [InlineData("limit=", "invalid-limit")]
    [InlineData("after=", "invalid-after")]
    [InlineData("after=..%2Fother", "invalid-after")]
    [InlineData("limit=2&after=a%20b", "invalid-after")]
    public async Task Bad_paging_parameters_answer_400_problem_details(string query, string code)
    {
        await using var host = await StartAsync(firestore: true);
        var client = await ChatApiClient.SignInAsync(host.Address, "paging-bad-params");
        await client.ChatAsync(new { message = "hello" });
        using var response = await client.Http.GetAsync($"/api/sessions/{client.LastSessionId}/messages?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    private Task<ChatApiHost> StartAsync(bool firestore) => ChatApiHost.StartOnStoreAsync(firestore, stack.FirestoreHost);

    private static List<string> Ids(JsonElement messages) => messages.EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToList();

    // <path?query>; rel="next"
    private static string NextLink(string link)
    {
        Assert.EndsWith("; rel=\"next\"", link);
        return link[1..link.IndexOf('>', StringComparison.Ordinal)];
    }
}
