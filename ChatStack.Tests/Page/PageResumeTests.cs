using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>
/// The chat page in headless Chromium against the chat API in process on its in-memory store, with the connections
/// of an answer cut by the test: how the page resumes, whatever the rest of the stack does.
/// </summary>
public sealed class PageResumeTests(BrowserFixture browsers) : InProcessPageTests(browsers)
{
    private const int MaxResumes = 5; // MAX_RESUMES in app.js
    private static readonly Regex ChatConnection = new("/api/chat(/streams/[^/]+)?$");

    [ChromiumFact]
    public async Task A_connection_that_keeps_dropping_but_brings_new_events_each_time_is_followed_to_the_end()
    {
        var page = await OpenSignedInAsync("page-flaky");

        // Every connection, the POST and the next resumes, brings two new events and is cut in the third: more drops
        // in all than the page's limit, but never two in a row without progress. Then one resume runs to the end.
        const int cut = MaxResumes + 3;
        var connections = 0;
        await page.RouteAsync(ChatConnection, async route =>
        {
            if (Interlocked.Increment(ref connections) > cut)
            {
                await route.ContinueAsync();
                return;
            }

            await PageSteps.PassThroughAsync(route, body => Cut(body, events: 2));
        });

        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync("Write a long essay about unreliable networks.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });

        Assert.Equal(cut + 1, Volatile.Read(ref connections));
        await Expect(answer.Locator(".note", new() { HasText = "kept dropping" })).ToHaveCountAsync(0);
        await AssertStoredAnswerShownAsync(page, "page-flaky");
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task Resumes_that_bring_nothing_new_are_given_up_after_the_limit_in_a_row()
    {
        var page = await OpenSignedInAsync("page-offline");
        var connections = 0;
        await page.RouteAsync(ChatConnection, route =>
        {
            var first = Interlocked.Increment(ref connections) == 1;
            return PageSteps.PassThroughAsync(route, body => Cut(body, events: first ? 2 : 0));
        });

        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync("Write a long essay about dead networks.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer.Locator(".note", new() { HasText = "kept dropping" })).ToHaveCountAsync(1, new() { Timeout = 60_000 });

        Assert.Equal(1 + MaxResumes, Volatile.Read(ref connections));
    }

    [ChromiumFact]
    public async Task A_resume_refused_for_a_moment_by_a_proxy_is_tried_again_and_the_answer_runs_to_its_end()
    {
        var page = await OpenSignedInAsync("page-proxy-503");
        // The answer's connection is cut; the first resume meets a proxy with no upstream for a second (503 with
        // Retry-After, as a load balancer answers while the API restarts or scales); the next one goes through.
        var connections = 0;
        await page.RouteAsync(ChatConnection, route => Interlocked.Increment(ref connections) switch
        {
            1 => PageSteps.PassThroughAsync(route, body => Cut(body, events: 2)),
            2 => route.FulfillAsync(new() { Status = 503, Headers = new Dictionary<string, string> { ["Retry-After"] = "1" }, Body = "no healthy upstream" }),
            _ => route.ContinueAsync(),
        });

        var response = await PageSteps.SendAsync(page, "Write a long essay about proxies.");

        Assert.Equal(200, response.Status);
        Assert.Equal(3, Volatile.Read(ref connections));
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer.Locator(".note.error")).ToHaveCountAsync(0);
        await AssertStoredAnswerShownAsync(page, "page-proxy-503");
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task Stop_during_the_wait_before_a_resume_ends_the_answer_at_once_and_no_resume_follows()
    {
        var page = await OpenSignedInAsync("page-stop-backoff");
        var resumes = 0;
        page.Request += (_, request) =>
        {
            if (request.Method == "GET" && request.Url.Contains("/api/chat/streams/", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref resumes);
            }
        };
        await page.RouteAsync("**/api/chat", route => PageSteps.PassThroughAsync(route, body => Cut(body, events: 2)));
        // The page's clock stands still: its wait before a resume ends only when the test moves the clock on.
        await page.Clock.InstallAsync();
        await page.Clock.PauseAtAsync(DateTime.UtcNow.AddSeconds(1));

        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync("Write a long essay about patience.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer.Locator(".note")).ToContainTextAsync("Connection lost; reconnecting");

        // No time passes: Stop itself ends the wait and the answer.
        await page.GetByRole(AriaRole.Button, new() { Name = "Stop" }).ClickAsync();
        await Expect(answer.Locator(".note").Last).ToHaveTextAsync("Stopped.");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();

        // Long past any backoff, the stopped answer is not resumed. A request the page sends after the timers ran
        // is seen after any it sent while they ran.
        await page.Clock.RunForAsync(60_000);
        await page.RunAndWaitForRequestAsync(() => page.EvaluateAsync("() => { fetch('index.html?after-the-timers'); }"),
            request => request.Url.EndsWith("?after-the-timers", StringComparison.Ordinal));
        Assert.Equal(0, Volatile.Read(ref resumes));
        await Expect(answer.Locator(".note.error")).ToHaveCountAsync(0);
        Assert.Empty(PageErrors);
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
}
