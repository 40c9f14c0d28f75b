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

    [ChromiumFact]
    public async Task A_resumed_stream_that_repeats_events_already_seen_shows_each_of_them_once()
    {
        const string user = "page-repeats";
        var page = await OpenSignedInAsync(user);
        // The answer's connection is cut halfway through its events, past its tool call. The resume is answered with
        // the API's real stream from an earlier Last-Event-ID than the page sent, as a proxy or cache replaying too
        // much would: the text, the tool call and the meter figures the page has already shown come first, again.
        string? whole = null, cut = null, sentLastId = null, resumed = null;
        var connections = 0;
        await page.RouteAsync(ChatConnection, async route =>
        {
            switch (Interlocked.Increment(ref connections))
            {
                case 1:
                    whole = await PageSteps.PassThroughAsync(route, body => cut = Cut(body, events: body.Split("\n\n").Count(IsEvent) / 2));
                    break;
                case 2:
                    sentLastId = await route.Request.HeaderValueAsync("last-event-id");
                    var real = await route.FetchAsync(new() { Headers = await WithLastEventIdAsync(route.Request, EarlierId(sentLastId!)), Timeout = 60_000 });
                    resumed = await real.TextAsync();
                    var headers = real.Headers.Where(h => h.Key is not ("content-length" or "transfer-encoding")).ToDictionary(h => h.Key, h => h.Value);
                    await route.FulfillAsync(new() { Status = real.Status, Headers = headers, Body = resumed });
                    break;
                default:
                    await route.ContinueAsync();
                    break;
            }
        });

        await PageSteps.SendAsync(page, "What time is it in Tokyo? Then write a long essay about echoes.");

        Assert.Equal(2, Volatile.Read(ref connections));
        var seen = await PageSteps.ParseSseAsync(cut!);
        Assert.Equal(seen.Last().Id, sentLastId);
        Assert.Contains(seen, e => e.Event == "tool_end");
        await AssertRepeatsDeliveredAsync(seen, resumed!);
        await AssertShownOnceAsync(page, user, await PageSteps.ParseSseAsync(whole!));
    }

    [ChromiumFact]
    public async Task A_stream_still_running_resumed_with_repeats_of_events_already_seen_shows_each_of_them_once()
    {
        const string user = "page-repeats-live";
        // Slow enough that the answer is still being written long after the page resumes it.
        var page = await OpenSignedInAsync(user, new Dictionary<string, string?> { ["Chat:Offline:DeltaDelayMs"] = "8" });
        // The answer's connection is cut as soon as some text has come, while the API goes on writing it; the resume
        // is sent on to the API with an earlier Last-Event-ID than the page sent, so the API's live stream repeats
        // what the page has seen before it brings the rest as it is written.
        string? cut = null, sentLastId = null, sessionId = null, streamId = null;
        bool? runningAtResume = null;
        IRequest? resume = null;
        var connections = 0;
        await page.RouteAsync(ChatConnection, async route =>
        {
            switch (Interlocked.Increment(ref connections))
            {
                case 1:
                    (cut, sessionId, streamId) = await CutWhileRunningAsync(route, deltas: 20);
                    break;
                case 2:
                    resume = route.Request;
                    sentLastId = await route.Request.HeaderValueAsync("last-event-id");
                    var stored = await StoredMessagesAsync(user, sessionId!);
                    // Saved so far: the message and the tool results; the answer is saved once it ends.
                    runningAtResume = stored.Last().GetProperty("role").GetString() != "assistant";
                    await route.ContinueAsync(new() { Headers = await WithLastEventIdAsync(route.Request, EarlierId(sentLastId!)) });
                    break;
                default:
                    await route.ContinueAsync();
                    break;
            }
        });

        await PageSteps.SendAsync(page, "What time is it in Tokyo? Then write a long essay about echoes that come back late.");

        Assert.Equal(2, Volatile.Read(ref connections));
        Assert.True(runningAtResume, "the answer was still being written when the page resumed it");
        var seen = await PageSteps.ParseSseAsync(cut!);
        Assert.Equal(seen.Last().Id, sentLastId);
        Assert.Contains(seen, e => e.Event == "tool_end");

        await AssertRepeatsDeliveredAsync(seen, await (await resume!.ResponseAsync())!.TextAsync());

        // The run as the API kept it, from its first event.
        using var http = Host.CreateClient();
        var api = await ChatApiClient.SignInAsync(http, user);
        await AssertShownOnceAsync(page, user, await PageSteps.ParseSseAsync(await api.Http.GetStringAsync($"/api/chat/streams/{streamId}")));
    }

    /// <summary>A Last-Event-ID of the same stream, for its first event: everything after it the page has seen comes again.</summary>
    private static string EarlierId(string lastEventId)
    {
        Assert.True(SequenceOf(lastEventId) > 2, $"the page had seen more than the first events ({lastEventId})");
        return $"{lastEventId[..lastEventId.LastIndexOf('.')]}.1";
    }

    private static long SequenceOf(string? eventId) => long.Parse(eventId![(eventId!.LastIndexOf('.') + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    private static bool IsEvent(string frame) => frame.StartsWith("id: ", StringComparison.Ordinal);

    private static async Task<Dictionary<string, string>> WithLastEventIdAsync(IRequest request, string lastEventId)
    {
        var headers = (await request.AllHeadersAsync()).Where(h => !h.Key.StartsWith(':')).ToDictionary(h => h.Key, h => h.Value);
        headers["last-event-id"] = lastEventId;
        return headers;
    }

    /// <summary>The resumed stream repeated text and the tool call the page had seen, before it went on past them.</summary>
    private static async Task AssertRepeatsDeliveredAsync(List<SseMessage> seen, string resumed)
    {
        var events = await PageSteps.ParseSseAsync(resumed);
        var lastSeen = SequenceOf(seen.Last().Id);
        var repeats = events.TakeWhile(e => SequenceOf(e.Id) <= lastSeen).ToList();
        Assert.Equal(seen.Skip(1).Select(e => e.Id), repeats.Select(e => e.Id));
        Assert.Contains(repeats, e => e.Event == "message_delta");
        Assert.Contains(repeats, e => e.Event == "tool_start");
        Assert.Equal("done", events.Last().Event);
    }

    /// <summary>
    /// The answer on the page is the stored one, its tool calls are listed once each, and the meter ends on the done
    /// event's usage.
    /// </summary>
    private async Task AssertShownOnceAsync(IPage page, string user, List<SseMessage> all)
    {
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer).ToHaveCountAsync(1);
        await Expect(answer.Locator(".note.error")).ToHaveCountAsync(0);
        await AssertStoredAnswerShownAsync(page, user);

        var toolStarts = all.Where(e => e.Event == "tool_start").Select(e => e.Payload.GetProperty("name").GetString()).ToList();
        var stored = await StoredMessagesAsync(user, PageSteps.SessionIdOf(page));
        Assert.Equal(toolStarts.Count, stored.Count(m => m.GetProperty("role").GetString() == "tool"));
        Assert.NotEmpty(toolStarts);
        Assert.Equal(toolStarts, await answer.Locator(".tool").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.name)"));
        await Expect(answer.Locator(".tool[data-status=running]")).ToHaveCountAsync(0);

        var usage = all.Single(e => e.Event == "done").Payload.GetProperty("usage");
        foreach (var (id, key) in new[] { ("meter-prompt", "prompt_tokens"), ("meter-completion", "completion_tokens"), ("meter-total", "total_tokens") })
        {
            await Expect(page.Locator($"#{id}")).ToHaveTextAsync(usage.GetProperty(key).GetInt64().ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.Empty(PageErrors);
    }

    /// <summary>
    /// Sends the page's chat POST on to the API and answers the page with what came until <paramref name="deltas"/>
    /// text deltas had, and half of the next event: the connection is cut as a proxy would, and the API goes on
    /// writing the answer for a resume. The text the page got, and the session and stream ids.
    /// </summary>
    private async Task<(string Cut, string SessionId, string StreamId)> CutWhileRunningAsync(IRoute route, int deltas)
    {
        string text, sessionId, streamId;
        Dictionary<string, string> headers;
        using (var http = ChatApiClient.CreateHttpClient(Host.Address))
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/api/chat"))
        {
            request.Content = new StringContent(route.Request.PostData!, Encoding.UTF8, "application/json");
            request.Headers.TryAddWithoutValidation("Authorization", await route.Request.HeaderValueAsync("authorization"));
            request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(200, (int)response.StatusCode);
            headers = response.Headers.Concat(response.Content.Headers)
                .Where(h => !h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && !h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                .ToDictionary(h => h.Key, h => string.Join(", ", h.Value));
            sessionId = response.Headers.GetValues("X-Session-Id").Single();
            streamId = response.Headers.GetValues("X-Stream-Id").Single();

            var body = new StringBuilder();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (deltas > 0 && await reader.ReadLineAsync() is { } line)
            {
                body.Append(line).Append('\n');
                deltas -= line == "event: message_delta" ? 1 : 0;
            }

            // The rest of that event, then the first line of the next one only.
            while (await reader.ReadLineAsync() is { Length: > 0 } line)
            {
                body.Append(line).Append('\n');
            }

            text = body.Append('\n').Append(await reader.ReadLineAsync()).Append('\n').ToString();
        }

        // The connection to the API has closed, with the answer still being written.
        await route.FulfillAsync(new() { Status = 200, Headers = headers, Body = text });
        return (text, sessionId, streamId);
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
