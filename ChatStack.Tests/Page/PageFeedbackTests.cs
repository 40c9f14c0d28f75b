using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>What the page announces to screen readers and where it says what went wrong, against the chat API in process.</summary>
public sealed class PageFeedbackTests(BrowserFixture browsers) : InProcessPageTests(browsers)
{
    [ChromiumFact]
    public async Task The_meter_announces_a_refusal_when_it_starts_and_ends_not_every_figure_or_second()
    {
        var page = await OpenSignedInAsync("page-announce", new Dictionary<string, string?> { ["Limits:Users:page-announce:RequestsPerWindow"] = "1" });
        await RecordMeterAnnouncementsAsync(page);

        // An answer moves every figure of the meter many times: none of that is read out.
        await PageSteps.SendAsync(page, "What time is it in Tokyo? Then write a long essay about clocks.");
        await Expect(page.Locator("#meter-phase")).Not.ToHaveTextAsync("idle");
        Assert.Empty(await AnnouncedAsync(page));

        // A 429: its countdown runs on screen every second, read out when it starts and when it ends.
        await page.Clock.InstallAsync();
        await page.Clock.PauseAtAsync(DateTime.UtcNow.AddSeconds(1));
        await page.GetByLabel("Message").FillAsync("And again?");
        var refused = await page.RunAndWaitForResponseAsync(() => page.GetByLabel("Message").PressAsync("Enter"), PageSteps.IsChatPost);
        Assert.Equal(429, refused.Status);
        var state = page.Locator("#meter-state");
        await Expect(state).ToContainTextAsync("Rate limited. You can send again in");
        var first = (await state.TextContentAsync())!;
        await page.Clock.RunForAsync(3_000);
        await Expect(state).Not.ToHaveTextAsync(first);
        Assert.Equal([first], await AnnouncedAsync(page));

        await page.Clock.RunForAsync((int.Parse(refused.Headers["retry-after"]) + 1) * 1_000);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        Assert.Equal([first, "You can send again."], await AnnouncedAsync(page));
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task At_360_pixels_a_chat_that_cannot_be_renamed_or_opened_says_so_by_the_chat_not_below_the_composer()
    {
        var page = await OpenSignedInAsync("page-narrow-errors", width: 360, height: 740);
        await PageSteps.SendAsync(page, "Tell me about plums.");
        var error = page.Locator(".session-bar").GetByRole(AriaRole.Alert);

        page.Dialog += (_, dialog) => dialog.AcceptAsync(new string('p', 201));
        await page.GetByRole(AriaRole.Button, new() { Name = "Rename" }).ClickAsync();
        await Expect(error).ToHaveTextAsync("Could not rename the chat: title has 201 characters; the limit is 200.");
        await AssertAboveTheComposerAsync(page, error);

        // Deleted elsewhere meanwhile: opening it from the list (below the composer here) fails, and says so by the chat.
        using var http = Host.CreateClient();
        var api = await Support.ChatApiClient.SignInAsync(http, "page-narrow-errors");
        using var deleted = await api.Http.DeleteAsync($"/api/sessions/{PageSteps.SessionIdOf(page)}");
        Assert.Equal(System.Net.HttpStatusCode.NoContent, deleted.StatusCode);
        await page.Locator("#session-list button").First.ClickAsync();
        await Expect(error).ToContainTextAsync("Could not open the session:");
        await Expect(error).ToBeInViewportAsync();
        await AssertAboveTheComposerAsync(page, error);
        Assert.Empty(PageErrors);
    }

    private static async Task AssertAboveTheComposerAsync(IPage page, ILocator error)
    {
        var box = await error.BoundingBoxAsync();
        var composer = await page.Locator("#composer").BoundingBoxAsync();
        Assert.True(box is not null && composer is not null && box.Y + box.Height <= composer.Y, $"the error ({box?.Y}) is above the composer ({composer?.Y})");
    }

    /// <summary>Records each text a live region of the meter takes from now on: what a screen reader would read out.</summary>
    private static Task RecordMeterAnnouncementsAsync(IPage page) => page.EvaluateAsync("""
        () => {
          window.announced = [];
          const meter = document.getElementById('meter');
          const live = 'output, [role=status], [role=alert], [role=log], [role=timer], [aria-live]:not([aria-live=off])';
          new MutationObserver(records => {
            for (const r of records) {
              const region = (r.target instanceof Element ? r.target : r.target.parentElement)?.closest(live);
              const text = region && meter.contains(region) ? region.textContent : '';
              if (text && window.announced.at(-1) !== text) window.announced.push(text);
            }
          }).observe(meter, { childList: true, characterData: true, subtree: true });
        }
        """);

    private static Task<string[]> AnnouncedAsync(IPage page) => page.EvaluateAsync<string[]>("() => window.announced");
}
