using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Sessions;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.Chat;

/// <summary><c>PATCH /api/sessions/{id}</c> on Kestrel, against the real Firestore emulator and with the in-memory store.</summary>
[Collection(StackCollection.Name)]
public class SessionRenameTests(StackFixture stack)
{
    public static TheoryData<bool> Stores => new() { true, false };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_long_first_message_titles_the_session_cut_before_an_emoji_it_would_split(bool firestore)
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore, stack.FirestoreHost);
        var client = await ChatApiClient.SignInAsync(host.Address, $"title-cut-{firestore}");
        // The 79th unit is the first half of 🌊: a cut there stored U+FFFD in the title.
        var message = new string('a', 78) + "🌊 and much more after it";
        await client.ChatAsync(new { message });

        var title = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("title").GetString()!;
        Assert.Equal(new string('a', 78) + "…", title);

        // Short of a pair, the cut keeps everything that fits.
        await client.ChatAsync(new { message = new string('b', 100) });
        Assert.Equal(new string('b', 79) + "…", (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("title").GetString());
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_renamed_session_keeps_its_place_and_only_its_owner_can_rename_it(bool firestore)
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore, stack.FirestoreHost);
        var alice = await ChatApiClient.SignInAsync(host.Address, $"rename-alice-{firestore}");
        await alice.ChatAsync(new { message = "What is 6*7?" });
        var older = alice.LastSessionId!;
        await alice.ChatAsync(new { message = "Tell me about plums." });
        var before = await alice.GetJsonAsync($"/api/sessions/{older}");

        using var renamed = await alice.Http.PatchAsJsonAsync($"/api/sessions/{older}", new { title = "  Arithmetic  " });

        Assert.Equal(HttpStatusCode.OK, renamed.StatusCode);
        Assert.Equal("Arithmetic", (await renamed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
        var after = await alice.GetJsonAsync($"/api/sessions/{older}");
        Assert.Equal("Arithmetic", after.GetProperty("title").GetString());
        // A rename is not activity: the list keeps its order, and the totals and times are untouched.
        Assert.Equal(before.GetProperty("updated_at").GetString(), after.GetProperty("updated_at").GetString());
        Assert.Equal(before.GetProperty("total_tokens").GetInt64(), after.GetProperty("total_tokens").GetInt64());
        var listed = (await alice.GetJsonAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("title").GetString());
        Assert.Equal(["Tell me about plums.", "Arithmetic"], listed);

        // Someone else's session is a 404, as their read is, and keeps its title; so is one that does not exist.
        var bob = await ChatApiClient.SignInAsync(host.Address, $"rename-bob-{firestore}");
        using (var foreign = await bob.Http.PatchAsJsonAsync($"/api/sessions/{older}", new { title = "Mine now" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        using (var missing = await alice.Http.PatchAsJsonAsync("/api/sessions/no-such-session", new { title = "Ghost" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        Assert.Equal("Arithmetic", (await alice.GetJsonAsync($"/api/sessions/{older}")).GetProperty("title").GetString());

        // The store does not bring back a session deleted between the ownership check and the rename.
        var store = host.Services.GetRequiredService<IChatSessionStore>();
        Assert.False(await store.RenameSessionAsync("deleted-meanwhile", "Zombie", CancellationToken.None));
        Assert.Null(await store.GetSessionAsync("deleted-meanwhile", CancellationToken.None));
    }

    [Theory]
    [InlineData("{}", "invalid-title", "title is required")]
    [InlineData("{\"title\":\"   \"}", "invalid-title", "title is required")]
    [InlineData("{\"title\":\"two\\nlines\"}", "invalid-title", "one line of text")]
    [InlineData("{\"title\":\"" + "x" + "\"", "malformed-json", "The body is not valid JSON (line 1, byte 13)")]
    [InlineData("{\"title\":42}", "invalid-body", "'title' must be a string, not a number (42)")]
    [InlineData("{\"name\":\"New\"}", "invalid-body", "'name' is not a field of a session update; its fields are title")]
    public async Task A_bad_title_is_a_400_that_says_what_is_wrong_and_changes_nothing(string body, string code, string detail)
    {
        await using var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost);
        var client = await ChatApiClient.SignInAsync(host.Address, "rename-bad-input");
        await client.ChatAsync(new { message = "Keep my title." });
        var session = client.LastSessionId!;

        using var refused = await client.Http.PatchAsync($"/api/sessions/{session}", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Contains(detail, problem.GetProperty("detail").GetString());
        Assert.Equal("Keep my title.", (await client.GetJsonAsync($"/api/sessions/{session}")).GetProperty("title").GetString());
    }

    [Fact]
    public async Task A_title_too_long_a_bad_id_text_instead_of_json_and_a_store_down_each_get_their_own_answer()
    {
        await using (var host = await ChatApiHost.StartOnStoreAsync(firestore: true, stack.FirestoreHost))
        {
            var client = await ChatApiClient.SignInAsync(host.Address, "rename-limits");
            await client.ChatAsync(new { message = "hello" });
            var session = client.LastSessionId!;

            using (var longest = await client.Http.PatchAsJsonAsync($"/api/sessions/{session}", new { title = new string('t', 200) }))
            {
                Assert.Equal(HttpStatusCode.OK, longest.StatusCode);
            }

            using (var tooLong = await client.Http.PatchAsJsonAsync($"/api/sessions/{session}", new { title = new string('t', 201) }))
            {
                var problem = JsonDocument.Parse(await tooLong.Content.ReadAsStringAsync()).RootElement;
                Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
                Assert.Equal("title has 201 characters; the limit is 200.", problem.GetProperty("detail").GetString());
                Assert.Equal(200, problem.GetProperty("max_title_chars").GetInt32());
            }

            using (var badId = await client.Http.PatchAsJsonAsync("/api/sessions/not.a.session", new { title = "x" }))
            {
                Assert.Equal("invalid-session-id", JsonDocument.Parse(await badId.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
            }

            using (var text = await client.Http.PatchAsync($"/api/sessions/{session}", new StringContent("{\"title\":\"x\"}", Encoding.UTF8, "text/plain")))
            {
                Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
            }

            Assert.Equal(new string('t', 200), (await client.GetJsonAsync($"/api/sessions/{session}")).GetProperty("title").GetString());
        }

        await using (var down = await ChatApiHost.StartAsync("127.0.0.1:1", new Dictionary<string, string?>()))
        {
            var client = await ChatApiClient.SignInAsync(down.Address, "rename-store-down");
            using var unavailable = await client.Http.PatchAsJsonAsync("/api/sessions/some-session", new { title = "x" });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
            Assert.True(unavailable.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        }
    }
}
