using System.Text.Json;
using ChatStack.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>Signing out and another user signing in on the same tab, against the chat API in process.</summary>
public sealed class PageSignOutTests(BrowserFixture browsers) : InProcessPageTests(browsers)
{
    [ChromiumFact]
    public async Task Signing_out_in_the_middle_of_an_answer_leaves_nothing_of_the_chat_to_the_next_user()
    {
        // Slow enough that the second answer still streams when Alice signs out.
        var page = await OpenSignedInAsync("page-alice", new Dictionary<string, string?> { ["Chat:Offline:DeltaDelayMs"] = "20" });
        await PageSteps.SendAsync(page, "Tell me about Zanzibar.");
        await PageSteps.StartAnswerAsync(page, "Write a long essay about Zanzibar.");
        await page.GetByLabel("Message").FillAsync("And Zanzibar's ferries?");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page.GetByLabel("User id")).ToHaveValueAsync("dev-user");

        await PageSteps.SignInAsync(page, "page-bob");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await AssertNothingOfAliceAsync(page);
        Assert.DoesNotContain("#session=", page.Url);
        await Expect(page.Locator("#messages .turn")).ToHaveCountAsync(0);
        await Expect(page.Locator("#session-info")).ToBeEmptyAsync();
        await Expect(page.Locator("#meter-total")).ToHaveTextAsync("0");

        // Bob's first message starts a session of his own.
        var response = await PageSteps.SendAsync(page, "Hello from Bob.");
        Assert.Equal(200, response.Status);
        Assert.False(JsonDocument.Parse(response.Request.PostData!).RootElement.TryGetProperty("session_id", out _), "no session id is sent");
        using var http = Host.CreateClient();
        var bob = await ChatApiClient.SignInAsync(http, "page-bob");
        var sessions = (await bob.GetJsonAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetString()).ToList();
        Assert.Equal([PageSteps.SessionIdOf(page)], sessions);
        await Expect(page.Locator(".turn[data-role=assistant] .text")).ToContainTextAsync("Hello from Bob.");

        // By now anything Alice's answer or requests could still bring back has come, and none of it shows.
        await AssertNothingOfAliceAsync(page);
        await Expect(page.Locator(".note.error")).ToHaveCountAsync(0);
        await Expect(page.Locator("#sign-in-error")).ToBeEmptyAsync();
        await Expect(page.GetByText("Signed in as page-bob")).ToBeVisibleAsync();
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task Signing_out_during_a_rate_limit_countdown_gives_the_next_user_a_clear_meter()
    {
        var page = await OpenSignedInAsync("page-carol", new Dictionary<string, string?> { ["Limits:Users:page-carol:RequestsPerWindow"] = "1" });
        await PageSteps.SendAsync(page, "Hello.");
        await page.GetByLabel("Message").FillAsync("Hello again.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var meter = page.Locator("#meter");
        await Expect(meter).ToHaveAttributeAsync("data-state", "limited");
        await Expect(page.Locator("#meter-state")).ToContainTextAsync("You can send again in");

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await PageSteps.SignInAsync(page, "page-dave");

        await Expect(meter).ToHaveAttributeAsync("data-state", "idle");
        await Expect(page.Locator("#meter-state")).ToBeEmptyAsync();
        await Expect(page.Locator("#meter-total")).ToHaveTextAsync("0");
        await PageSteps.SendAsync(page, "Hello from Dave.");
        await Expect(page.Locator(".turn[data-role=assistant] .text")).ToContainTextAsync("Hello from Dave.");
        Assert.Empty(PageErrors);
    }

    /// <summary>Alice's name and words appear nowhere in the page: its markup, hidden parts and form fields included.</summary>
    private static async Task AssertNothingOfAliceAsync(IPage page)
    {
        var found = await page.EvaluateAsync<string[]>("""
            () => [document.documentElement.outerHTML, ...[...document.querySelectorAll('input, textarea')].map(e => e.value)]
              .flatMap(text => ['Zanzibar', 'page-alice'].filter(word => text.includes(word))
                .map(word => text.slice(Math.max(0, text.indexOf(word) - 200), text.indexOf(word) + 100)))
            """);
        Assert.Empty(found);
    }
}
