using System.Text;
using System.Text.RegularExpressions;
using ChatStack.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>
/// The chat page in headless Chromium against the chat API in process on its in-memory store, with the connections
/// of an answer cut by the test: how the page resumes, whatever the rest of the stack does.
/// </summary>
public sealed class PageResumeTests(BrowserFixture browsers) : IClassFixture<BrowserFixture>, IAsyncLifetime
{
    private const int MaxResumes = 5; // MAX_RESUMES in app.js
    private ChatApiHost _host = null!;
    private IBrowserContext? _context;

    [ChromiumFact]
    public async Task A_connection_that_keeps_dropping_but_brings_new_events_each_time_is_followed_to_the_end()
    {
        var page = await OpenSignedInAsync("page-flaky");
        var pageErrors = new List<string>();
        page.PageError += (_, error) => pageErrors.Add(error);

        // Every connection, the POST and the next resumes, brings two new events and is cut in the third: more drops
        // in all than the page's limit, but never two in a row without progress. Then one resume runs to the end.
        const int cut = MaxResumes + 3;
        var connections = 0;
        await page.RouteAsync(new Regex("/api/chat(/streams/[^/]+)?$"), async route =>
        {
            if (Interlocked.Increment(ref connections) > cut)
            {
                await route.ContinueAsync();
                return;
            }

            var real = await route.FetchAsync(new() { Timeout = 60_000 });
            var body = await real.TextAsync();
            var headers = real.Headers.Where(h => h.Key is not ("content-length" or "transfer-encoding")).ToDictionary(h => h.Key, h => h.Value);
            await route.FulfillAsync(new() { Status = real.Status, Headers = headers, Body = Cut(body, events: 2) });
        });

        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync("Write a long essay about unreliable networks.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });

        Assert.Equal(cut + 1, Volatile.Read(ref connections));
        await Expect(answer.Locator(".note", new() { HasText = "kept dropping" })).ToHaveCountAsync(0);
        using var http = _host.CreateClient();
        var api = await ChatApiClient.SignInAsync(http, "page-flaky");
        var sessionId = PageSteps.SessionIdOf(page);
        var stored = (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Last();
        Assert.Equal("stop", stored.GetProperty("finish_reason").GetString());
        Assert.Equal(await PageSteps.RenderAsync(page, stored.GetProperty("content").GetString()!), await answer.Locator(".text").TextContentAsync());
        Assert.Empty(pageErrors);
    }

    [ChromiumFact]
    public async Task Resumes_that_bring_nothing_new_are_given_up_after_the_limit_in_a_row()
    {
        var page = await OpenSignedInAsync("page-offline");
        var connections = 0;
        await page.RouteAsync(new Regex("/api/chat(/streams/[^/]+)?$"), async route =>
        {
            var first = Interlocked.Increment(ref connections) == 1;
            var real = await route.FetchAsync(new() { Timeout = 60_000 });
            var body = await real.TextAsync();
            var headers = real.Headers.Where(h => h.Key is not ("content-length" or "transfer-encoding")).ToDictionary(h => h.Key, h => h.Value);
            await route.FulfillAsync(new() { Status = real.Status, Headers = headers, Body = Cut(body, events: first ? 2 : 0) });
        });

        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync("Write a long essay about dead networks.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer.Locator(".note", new() { HasText = "kept dropping" })).ToHaveCountAsync(1, new() { Timeout = 60_000 });

        Assert.Equal(1 + MaxResumes, Volatile.Read(ref connections));
    }

    public async Task InitializeAsync()
    {
        SetDefaultExpectTimeout(20_000);
        _host = await ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["Chat:Offline:DeltaDelayMs"] = "0",
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_PUBSUB"] = "false",
        }, webRoot: ChatApiHost.PageRoot);
    }

    public async Task DisposeAsync()
    {
        if (_context is not null)
        {
            await _context.CloseAsync();
        }

        await _host.DisposeAsync();
    }

    /// <summary>The SSE text up to its <paramref name="events"/>th event with an id, and half of the next frame, as a proxy cutting it would.</summary>
    private static string Cut(string body, int events)
    {
        var text = new StringBuilder();
        var frames = body.Split("\n\n");
        for (var i = 0; i < frames.Length; i++)
        {
            if (events == 0)
            {
                return text.Append(frames[i][..(frames[i].Length / 2)]).ToString();
            }

            text.Append(frames[i]).Append("\n\n");
            events -= frames[i].StartsWith("id: ", StringComparison.Ordinal) ? 1 : 0;
        }

        throw new InvalidOperationException($"The answer ended before it could be cut: {body}");
    }

    private async Task<IPage> OpenSignedInAsync(string userId)
    {
        var browser = await browsers.GetAsync();
        _context = await browser.NewContextAsync(new() { BaseURL = _host.Address.ToString() });
        var page = await _context.NewPageAsync();
        await page.GotoAsync("/");
        await PageSteps.SignInAsync(page, userId);
        return page;
    }
}
