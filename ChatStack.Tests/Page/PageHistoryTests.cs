using System.Text.RegularExpressions;
using ChatStack.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>A stored session read back into the page, against the chat API in process.</summary>
public sealed class PageHistoryTests(BrowserFixture browsers) : InProcessPageTests(browsers)
{
    [ChromiumFact]
    public async Task A_session_longer_than_a_page_of_messages_opens_whole_by_following_the_next_links()
    {
        var page = await OpenSignedInAsync("page-long-history");
        using var http = Host.CreateClient();
        var api = await ChatApiClient.SignInAsync(http, "page-long-history");
        var session = await api.ChatTurnsAsync(51);

        var reads = new List<string>();
        page.Request += (_, request) =>
        {
            if (request.Url.Contains($"/api/sessions/{session}/messages", StringComparison.Ordinal))
            {
                reads.Add(new Uri(request.Url).PathAndQuery);
            }
        };
        await page.GotoAsync($"/#session={session}");
        await page.ReloadAsync();

        var turns = page.Locator("#messages .turn");
        await Expect(turns).ToHaveCountAsync(102);
        await Expect(turns.First).ToHaveTextAsync(new Regex("Say hello, number 1\\.$"));
        await Expect(turns.Nth(100)).ToHaveTextAsync(new Regex("Say hello, number 51\\.$"));
        await Expect(page.Locator("#session-info")).ToContainTextAsync("102 messages");
        Assert.Equal(2, reads.Count);
        Assert.StartsWith($"/api/sessions/{session}/messages?limit=100&after=", reads[1]);
        Assert.Empty(PageErrors);
    }
}
