using System.Text.Json;
using System.Text.RegularExpressions;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>
/// The chat page in headless Chromium against the chat API the AppHost started: real browser, real HTTP, real
/// Firestore emulator. Each test signs in as a user of its own through the development sign-in.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class ChatPageTests(StackFixture stack, BrowserFixture browsers, ITestOutputHelper output) : IClassFixture<BrowserFixture>, IAsyncLifetime
{
    private readonly List<IBrowserContext> _contexts = [];
    private readonly List<string> _pageErrors = [];

    private Uri BaseAddress => stack.App.GetEndpoint("chat-api", "http");

    [ChromiumFact]
    public async Task A_message_streams_in_and_the_meter_shows_every_figure_the_api_sent()
    {
        var page = await OpenSignedInAsync("page-stream");
        await RecordMeterAsync(page);
        await page.GetByLabel("Message").FillAsync("What time is it in Tokyo, and what is (12.5 + 3) * 4? Then write a long essay about token budgets.");

        // Enter sends; the response is the SSE stream the page reads.
        var response = await page.RunAndWaitForResponseAsync(() => page.GetByLabel("Message").PressAsync("Enter"), PageSteps.IsChatPost);

        // Part of the answer is on screen while it is still streaming.
        var partial = await (await page.WaitForFunctionAsync(
            "() => { const t = document.querySelector('.turn[data-role=assistant][aria-busy=true] .text'); return t && t.textContent.length > 600 ? t.textContent : null; }",
            null, new() { Timeout = 30_000 })).JsonValueAsync<string>();
        await SaveScreenshotAsync(page, "chat-page-mid-answer.png");
        var answer = page.Locator(".turn[data-role=assistant]").Last;
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });
        var final = await answer.Locator(".text").TextContentAsync() ?? "";
        Assert.True(final.Length > partial.Length, "more text arrived after the partial one");
        // Only the start is compared: an inline code span still open mid-stream renders differently once closed.
        Assert.StartsWith(partial[..40], final);

        var events = await PageSteps.ParseSseAsync(await response.TextAsync());
        var counts = events.Where(e => e.Event == "token_count").Select(e => e.Payload).ToList();
        var phases = counts.Select(c => c.GetProperty("phase").GetString()!).ToList();
        Assert.Equal("ingress", phases[0]);
        Assert.Contains("model_stream", phases);
        Assert.Contains("tool", phases);
        Assert.Equal("finalize", phases[^1]);
        var usage = events.Single(e => e.Event == "done").Payload.GetProperty("usage");

        // Every token_count was shown, in order, with the API's numbers: after the reset at send, one update per
        // event, then done's usage.
        var meter = await page.EvaluateAsync<Dictionary<string, string[]>>("() => window.meterLog");
        Assert.Equal(["idle", .. phases], meter["phase"]);
        foreach (var (field, key) in new[] { ("prompt", "prompt_tokens"), ("completion", "completion_tokens"), ("total", "total_tokens") })
        {
            Assert.Equal([0, .. counts.Select(c => c.GetProperty(field).GetInt64()), usage.GetProperty(key).GetInt64()], meter[field].Select(Number));
        }

        Assert.Equal(usage.GetProperty("budget_max").GetInt64(), Number(await page.Locator("#meter-max").TextContentAsync()));
        output.WriteLine($"{counts.Count} token_count events: {string.Join(" → ", phases.Distinct())}; total {usage.GetProperty("total_tokens")}");

        // The text is exactly what the API stored.
        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-stream");
        var sessionId = response.Headers["x-session-id"];
        var stored = (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Last();
        Assert.Equal(await PageSteps.RenderAsync(page, stored.GetProperty("content").GetString()!), final);
        var session = await api.GetJsonAsync($"/api/sessions/{sessionId}");
        Assert.Equal(session.GetProperty("total_tokens").GetInt64(), Number(await page.Locator("#meter-total").TextContentAsync()));
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task Tool_calls_show_inline_with_status_duration_and_result()
    {
        var page = await OpenSignedInAsync("page-tools");
        var response = await PageSteps.SendAsync(page, "What time is it in Tokyo, and what is (12.5 + 3) * 4?");
        var toolEnds = (await PageSteps.ParseSseAsync(await response.TextAsync())).Where(e => e.Event == "tool_end").Select(e => e.Payload).ToList();
        Assert.Equal(2, toolEnds.Count);

        var tools = page.Locator(".turn[data-role=assistant] .tool");
        await Expect(tools).ToHaveCountAsync(2);
        foreach (var end in toolEnds)
        {
            var name = end.GetProperty("name").GetString()!;
            var tool = tools.And(page.Locator($"[data-name='{name}']"));
            await Expect(tool).ToHaveAttributeAsync("data-status", "ok");
            await Expect(tool).ToContainTextAsync($"Tool {name}(");
            await Expect(tool).ToContainTextAsync(new Regex(@"— ok, \d+(\.\d+)? ms"));
            await Expect(tool.Locator(".result")).ToHaveTextAsync(end.GetProperty("result_summary").GetString()!);
        }

        await Expect(tools.And(page.Locator("[data-name=calculate]"))).ToContainTextAsync("expression: (12.5 + 3) * 4");
        await Expect(tools.And(page.Locator("[data-name=calculate]")).Locator(".result")).ToHaveTextAsync("62");
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task Markup_in_model_output_is_shown_as_text_and_never_runs()
    {
        var page = await OpenSignedInAsync("page-injection");
        // The offline model quotes the start of the message back.
        const string payload = "<img src=x onerror=window.injected=1> <script>window.injected=2</script> <b>bold</b>";
        await PageSteps.SendAsync(page, payload);
        var answer = page.Locator(".turn[data-role=assistant] .text").Last;
        await Expect(answer).ToContainTextAsync(payload);
        Assert.Equal(0, await page.Locator("#messages img, #messages script, #messages b").CountAsync());
        Assert.True(await page.EvaluateAsync<bool>("() => window.injected === undefined"));
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task A_rate_limited_send_shows_the_429_state_with_a_countdown_to_retry()
    {
        var page = await OpenSignedInAsync(StackFixture.PageLimitedUser);
        await PageSteps.SendAsync(page, "hello");

        await page.GetByLabel("Message").FillAsync("hello again");
        var refused = await page.RunAndWaitForResponseAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync(), PageSteps.IsChatPost);
        Assert.Equal(429, refused.Status);
        var retryAfter = int.Parse(refused.Headers["retry-after"]);

        var meter = page.Locator("#meter");
        await Expect(meter).ToHaveAttributeAsync("data-state", "limited");
        var state = page.Locator("#meter-state");
        await Expect(state).ToContainTextAsync("Rate limited. You can send again in");
        var shown = Regex.Match(await state.TextContentAsync() ?? "", @"in (\d+):(\d\d)");
        Assert.True(shown.Success);
        var seconds = int.Parse(shown.Groups[1].Value) * 60 + int.Parse(shown.Groups[2].Value);
        // Read a few browser round trips after the response: a loaded machine may take seconds for them.
        Assert.InRange(seconds, retryAfter - 10, retryAfter);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeDisabledAsync();
        // The message is kept for the retry, and the countdown runs.
        await Expect(page.GetByLabel("Message")).ToHaveValueAsync("hello again");
        await Expect(state).Not.ToHaveTextAsync(await state.TextContentAsync() ?? "");
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task A_run_that_spends_its_budget_shows_the_exhausted_state()
    {
        var page = await OpenSignedInAsync("page-budget");
        await page.GetByLabel("Budget (tokens)").FillAsync("120");
        var response = await PageSteps.SendAsync(page, "Write a long essay about thrift.");
        var done = (await PageSteps.ParseSseAsync(await response.TextAsync())).Single(e => e.Event == "done").Payload;
        Assert.Equal("budget_exhausted", done.GetProperty("finish_reason").GetString());

        await Expect(page.Locator("#meter")).ToHaveAttributeAsync("data-state", "exhausted");
        var total = done.GetProperty("usage").GetProperty("total_tokens").GetInt64();
        await Expect(page.Locator("#meter-state")).ToHaveTextAsync($"Budget exhausted: {total} of 120 tokens used. The answer stopped there; send again with a larger budget.");
        await Expect(page.Locator(".turn[data-role=assistant] .note")).ToHaveTextAsync("Finished: budget exhausted");
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task Past_the_context_share_the_meter_warns_that_history_will_be_summarized()
    {
        var page = await OpenSignedInAsync("page-summarize");
        // The picker offers what the API lists, its default chosen.
        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-summarize");
        var list = await api.GetJsonAsync("/api/models");
        var picker = page.GetByLabel("Model");
        await Expect(picker).ToHaveValueAsync(list.GetProperty("default_model").GetString()!);
        Assert.Equal(list.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()),
            await picker.Locator("option").EvaluateAllAsync<string[]>("options => options.map(o => o.value)"));
        await picker.SelectOptionAsync("chatstack-offline-small-context");

        await Expect(page.Locator("#meter-warning")).ToBeHiddenAsync();
        var response = await PageSteps.SendAsync(page, string.Concat(Enumerable.Repeat("word ", 560)) + "What now?");
        var counts = (await PageSteps.ParseSseAsync(await response.TextAsync())).Where(e => e.Event == "token_count").ToList();
        Assert.True(counts[^1].Payload.GetProperty("should_summarize").GetBoolean(), "the turn ends past 75% of a 700-token window");
        await Expect(page.Locator("#meter-warning")).ToBeVisibleAsync();
        await Expect(page.Locator("#meter-warning")).ToContainTextAsync("older messages will be summarized");
        Assert.Equal("chatstack-offline-small-context", JsonDocument.Parse(response.Request.PostData!).RootElement.GetProperty("model").GetString());

        // Reopened, the session goes on with the model it was started with.
        await picker.SelectOptionAsync(list.GetProperty("default_model").GetString()!);
        await page.ReloadAsync();
        await Expect(page.Locator("#messages .turn")).ToHaveCountAsync(2);
        await Expect(picker).ToHaveValueAsync("chatstack-offline-small-context");
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task A_past_session_reloads_from_the_session_list()
    {
        var page = await OpenSignedInAsync("page-history");
        await PageSteps.SendAsync(page, "Tell me about apples.");
        var firstSession = PageSteps.SessionIdOf(page);
        await page.GetByRole(AriaRole.Button, new() { Name = "New chat" }).ClickAsync();
        await Expect(page.Locator("#messages .turn")).ToHaveCountAsync(0);
        await PageSteps.SendAsync(page, "And what about pears?");

        // A fresh load (the token is kept for the tab) lists both, newest first, as the API does.
        await page.ReloadAsync();
        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-history");
        var listed = (await api.GetJsonAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToList();
        Assert.Equal(2, listed.Count);
        Assert.Equal(firstSession, listed[1]);
        var items = page.Locator("#session-list button");
        await Expect(items).ToHaveCountAsync(2);
        Assert.Equal(listed, await items.EvaluateAllAsync<string[]>("bs => bs.map(b => b.dataset.sessionId)"));
        await Expect(items.First).ToHaveAttributeAsync("aria-current", "true");

        await items.Nth(1).ClickAsync();
        await Expect(items.Nth(1)).ToHaveAttributeAsync("aria-current", "true");
        var turns = page.Locator("#messages .turn");
        await Expect(turns).ToHaveCountAsync(2);
        await Expect(turns.First).ToHaveTextAsync(new Regex("Tell me about apples\\.$"));
        var stored = (await api.GetJsonAsync($"/api/sessions/{firstSession}/messages")).EnumerateArray().Last().GetProperty("content").GetString()!;
        Assert.Equal(await PageSteps.RenderAsync(page, stored), await turns.Last.Locator(".text").TextContentAsync());
        await Expect(page.Locator("#session-info")).ToContainTextAsync("2 messages");
        Assert.EndsWith($"#session={firstSession}", page.Url);
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task A_chat_deleted_from_the_page_is_gone_from_the_list_and_the_api_after_a_confirmation()
    {
        var page = await OpenSignedInAsync("page-delete");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Delete chat" })).ToBeHiddenAsync();
        await PageSteps.SendAsync(page, "Tell me about plums.");
        var sessionId = PageSteps.SessionIdOf(page);
        var delete = page.GetByRole(AriaRole.Button, new() { Name = "Delete chat" });
        var items = page.Locator("#session-list button");
        await Expect(items).ToHaveCountAsync(1);

        // Cancelled at the confirmation: nothing happens.
        page.Dialog += DismissOnce;
        await delete.ClickAsync();
        await Expect(items).ToHaveCountAsync(1);
        await Expect(page.Locator("#messages .turn")).ToHaveCountAsync(2);

        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        var deleted = await page.RunAndWaitForResponseAsync(() => delete.ClickAsync(), r => r.Request.Method == "DELETE");
        Assert.Equal(204, deleted.Status);
        await Expect(items).ToHaveCountAsync(0);
        await Expect(page.Locator("#messages .turn")).ToHaveCountAsync(0);
        await Expect(delete).ToBeHiddenAsync();
        Assert.DoesNotContain("#session=", page.Url);
        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-delete");
        using var gone = await api.Http.GetAsync($"/api/sessions/{sessionId}");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Empty(_pageErrors);

        void DismissOnce(object? sender, IDialog dialog)
        {
            page.Dialog -= DismissOnce;
            _ = dialog.DismissAsync();
        }
    }

    [ChromiumFact]
    public async Task A_chat_renamed_from_the_page_shows_its_new_name_in_the_list_and_after_a_reload()
    {
        var page = await OpenSignedInAsync("page-rename");
        var rename = page.GetByRole(AriaRole.Button, new() { Name = "Rename" });
        await Expect(rename).ToBeHiddenAsync();
        await PageSteps.SendAsync(page, "Tell me about plums.");
        var firstItem = page.Locator("#session-list button span").First;
        await Expect(firstItem).ToHaveTextAsync("Tell me about plums.");

        // The prompt offers the current name; cancelling it changes nothing.
        string? offered = null;
        page.Dialog += DismissOnce;
        await rename.ClickAsync();
        Assert.Equal("Tell me about plums.", offered);
        await Expect(firstItem).ToHaveTextAsync("Tell me about plums.");

        page.Dialog += AcceptOnce(new string('p', 201));
        await rename.ClickAsync();
        await Expect(page.Locator("#session-error")).ToHaveTextAsync("Could not rename the chat: title has 201 characters; the limit is 200.");

        page.Dialog += AcceptOnce("Plum notes");
        var renamed = await page.RunAndWaitForResponseAsync(() => rename.ClickAsync(), r => r.Request.Method == "PATCH");
        Assert.Equal(200, renamed.Status);
        await Expect(firstItem).ToHaveTextAsync("Plum notes");
        await Expect(page.Locator("#session-info")).ToContainTextAsync("Plum notes");
        await Expect(page.Locator("#session-error")).ToBeEmptyAsync();

        await page.ReloadAsync();
        await Expect(firstItem).ToHaveTextAsync("Plum notes");
        Assert.Empty(_pageErrors);

        void DismissOnce(object? sender, IDialog dialog)
        {
            page.Dialog -= DismissOnce;
            offered = dialog.DefaultValue;
            _ = dialog.DismissAsync();
        }

        EventHandler<IDialog> AcceptOnce(string answer)
        {
            EventHandler<IDialog>? handler = null;
            handler = (_, dialog) =>
            {
                page.Dialog -= handler;
                _ = dialog.AcceptAsync(answer);
            };
            return handler;
        }
    }

    [ChromiumFact]
    public async Task A_dropped_stream_resumes_with_last_event_id_without_repeating_text()
    {
        var page = await OpenSignedInAsync("page-resume");
        string? cutBody = null;
        // The first answer's connection ends halfway through an event, as a proxy cutting it would.
        await page.RouteAsync("**/api/chat", async route =>
        {
            if (route.Request.Method != "POST" || cutBody is not null)
            {
                await route.ContinueAsync();
                return;
            }

            await PageSteps.PassThroughAsync(route, body => cutBody = body[..(body.Length / 2)]);
        });
        var resumes = new List<IRequest>();
        page.Request += (_, request) =>
        {
            if (request.Url.Contains("/api/chat/streams/", StringComparison.Ordinal))
            {
                resumes.Add(request);
            }
        };

        await PageSteps.SendAsync(page, "Write a long essay about rivers.");
        await Expect(page.Locator(".turn[data-role=assistant] .note").First).ToContainTextAsync("Connection lost; reconnecting");
        var lastSeen = (await PageSteps.ParseSseAsync(cutBody!)).Last().Id;
        var resume = Assert.Single(resumes);
        Assert.Equal(lastSeen, await resume.HeaderValueAsync("last-event-id"));

        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-resume");
        var sessionId = PageSteps.SessionIdOf(page);
        var stored = (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Last().GetProperty("content").GetString()!;
        Assert.Equal(await PageSteps.RenderAsync(page, stored), await page.Locator(".turn[data-role=assistant] .text").TextContentAsync());
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task Stop_cancels_the_answer_on_the_server_and_the_turn_says_stopped()
    {
        var page = await OpenSignedInAsync("page-stop");
        await PageSteps.StartAnswerAsync(page, "Write a long essay about brakes.");

        // Closing the connection alone would leave the run going for the reconnect grace: Stop asks the API to stop it.
        var cancel = await page.RunAndWaitForRequestFinishedAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Stop" }).ClickAsync(),
            new() { Predicate = r => r.Method == "POST" && r.Url.EndsWith("/cancel", StringComparison.Ordinal) });
        Assert.Equal(204, (await cancel.ResponseAsync())!.Status);
        await Expect(page.Locator(".turn[data-role=assistant] .note")).ToContainTextAsync("Stopped.");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();

        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-stop");
        var sessionId = PageSteps.SessionIdOf(page);
        string? finish = null;
        for (var attempt = 0; attempt < 50 && finish is null; attempt++)
        {
            var messages = (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().ToList();
            finish = messages.Count == 2 ? messages[1].GetProperty("finish_reason").GetString() : null;
            await Task.Delay(finish is null ? 100 : 0);
        }

        Assert.Equal("cancelled", finish);
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task A_reload_in_the_middle_of_an_answer_picks_it_up_and_it_runs_to_its_end()
    {
        var page = await OpenSignedInAsync("page-reload");
        await PageSteps.StartAnswerAsync(page, "What time is it in Tokyo? Then write a long essay about reloading pages.");

        await page.ReloadAsync();
        // The tab is still signed in and on the session; the answer streams on in one turn, its tool call shown once.
        var answer = page.Locator(".turn[data-role=assistant]");
        await Expect(answer).ToHaveCountAsync(1);
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "true");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });
        await Expect(answer.Locator(".tool")).ToHaveCountAsync(1);
        await Expect(answer.Locator(".note")).ToHaveCountAsync(0); // no "Finished: cancelled", no error

        var api = await ChatApiClient.SignInAsync(BaseAddress, "page-reload");
        var sessionId = PageSteps.SessionIdOf(page);
        var stored = (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Last();
        Assert.Equal("stop", stored.GetProperty("finish_reason").GetString());
        Assert.Equal(await PageSteps.RenderAsync(page, stored.GetProperty("content").GetString()!), await answer.Locator(".text").TextContentAsync());
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task At_360_pixels_the_page_fits_and_works_from_the_keyboard()
    {
        var page = await OpenSignedInAsync("page-narrow", width: 360, height: 740);
        // Sign-in left the focus in the message box; Tab goes on to the model, the budget, then Send.
        await page.Keyboard.TypeAsync("Write a long essay about small screens.");
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByLabel("Model")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByLabel("Budget (tokens)")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator(".turn[data-role=assistant]")).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });
        await Expect(page.GetByLabel("Message")).ToBeFocusedAsync();

        var tooWide = await page.EvaluateAsync<string[]>(
            "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.id || e.className || e.tagName)");
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"), $"no sideways scrolling at 360 px; too wide: {string.Join(", ", tooWide)}");
        foreach (var id in new[] { "message", "model", "send", "meter", "messages" })
        {
            var box = await page.Locator($"#{id}").BoundingBoxAsync();
            Assert.NotNull(box);
            Assert.True(box.X >= 0 && box.X + box.Width <= 360, $"#{id} fits in 360 px ({box.X} + {box.Width})");
        }

        Assert.Equal("polite", await page.Locator("#messages").GetAttributeAsync("aria-live"));
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task Without_the_development_sign_in_the_page_asks_for_a_bearer_token()
    {
        const string key = "a-production-signing-key-of-sufficient-length-0123456789";
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?>
            {
                ["Identity:SigningKey"] = key,
                ["DualWrite:ContentHashKey"] = "a-content-hash-key-of-sufficient-length-0123456789",
                ["Chat:Offline:DeltaDelayMs"] = "0",
            }, "Production", ChatApiHost.PageRoot);
        var page = await OpenAsync(host.Address);
        await Expect(page.GetByText("No development sign-in here. Paste a bearer token")).ToBeVisibleAsync();
        await Expect(page.GetByLabel("User id")).ToBeHiddenAsync();

        // A token the API refuses sends the page back to sign-in with the reason.
        await page.GetByLabel("Bearer token").FillAsync("not-a-jwt");
        await page.GetByRole(AriaRole.Button, new() { Name = "Use token" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("expired or was refused");

        var token = ChatStack.ChatApi.Identity.IdentityExtensions.IssueDevelopmentToken(
            new ChatStack.ChatApi.Identity.ChatIdentityOptions { SigningKey = key }, "pasted-user", TimeProvider.System);
        await page.GetByLabel("Bearer token").FillAsync($"Bearer {token}");
        await page.GetByRole(AriaRole.Button, new() { Name = "Use token" }).ClickAsync();
        await Expect(page.GetByText("Signed in as pasted-user")).ToBeVisibleAsync();
        await PageSteps.SendAsync(page, "Hello from a pasted token.");
        await Expect(page.Locator(".turn[data-role=assistant] .text")).ToContainTextAsync("Hello from a pasted token.");
        Assert.Empty(_pageErrors);
    }

    [ChromiumFact]
    public async Task While_the_app_loads_after_sign_in_nothing_can_be_sent_so_a_first_answer_is_not_wiped()
    {
        // The model list answers late, as on a slow connection: the page has shown the composer by then.
        var page = await OpenAsync(BaseAddress);
        var release = new TaskCompletionSource();
        await page.RouteAsync("**/api/models", async route =>
        {
            await release.Task;
            await route.ContinueAsync();
        });
        await page.GetByLabel("User id").FillAsync("page-early-send");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByText("Signed in as page-early-send")).ToBeVisibleAsync();

        var send = page.GetByRole(AriaRole.Button, new() { Name = "Send" });
        await Expect(send).ToBeDisabledAsync();
        await page.GetByLabel("Message").FillAsync("Hello before the page is ready.");
        await page.GetByLabel("Message").PressAsync("Enter");
        await Expect(page.Locator(".turn")).ToHaveCountAsync(0);

        release.SetResult();
        await Expect(send).ToBeEnabledAsync();
        await PageSteps.SendAsync(page, "Hello once it is ready.");
        await Expect(page.Locator(".turn[data-role=assistant] .text")).ToContainTextAsync("Hello once it is ready.");
        Assert.Empty(_pageErrors);
    }

    [Fact]
    public async Task The_dashboard_links_the_page_as_Chat_and_the_page_needs_no_token()
    {
        var notifications = stack.App.Services.GetRequiredService<ResourceNotificationService>();
        Assert.True(notifications.TryGetCurrentState("chat-api", out var api));
        var link = Assert.Single(api.Snapshot.Urls, u => u.DisplayProperties.DisplayName == "Chat");
        Assert.Equal(BaseAddress, new Uri(link.Url));

        using var http = ChatApiClient.CreateHttpClient(new Uri(link.Url));
        using var response = await http.GetAsync("/");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<title>ChatStack</title>", await response.Content.ReadAsStringAsync());
        Assert.StartsWith("default-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single());
        using var script = await http.GetAsync("/js/app.js");
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
    }

    public Task InitializeAsync()
    {
        SetDefaultExpectTimeout(20_000);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var context in _contexts)
        {
            await context.CloseAsync();
        }
    }

    private async Task<IPage> OpenAsync(Uri address, int width = 1100, int height = 860)
    {
        var browser = await browsers.GetAsync();
        var context = await browser.NewContextAsync(new() { BaseURL = address.ToString(), ViewportSize = new() { Width = width, Height = height } });
        _contexts.Add(context);
        var page = await context.NewPageAsync();
        page.Console += (_, message) => output.WriteLine($"console {message.Type}: {message.Text}");
        page.PageError += (_, error) => _pageErrors.Add(error);
        await page.GotoAsync("/");
        return page;
    }

    private async Task<IPage> OpenSignedInAsync(string userId, int width = 1100, int height = 860)
    {
        var page = await OpenAsync(BaseAddress, width, height);
        await Expect(page.GetByLabel("Bearer token")).ToBeHiddenAsync();
        await PageSteps.SignInAsync(page, userId);
        await Expect(page.GetByLabel("Message")).ToBeFocusedAsync();
        return page;
    }

    /// <summary>Records each value the meter's figures take (the text node each update adds), in order.</summary>
    private static Task RecordMeterAsync(IPage page) => page.EvaluateAsync("""
        () => {
          window.meterLog = {};
          for (const name of ['phase', 'prompt', 'completion', 'total']) {
            const log = window.meterLog[name] = [];
            new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => log.push(n.textContent))))
              .observe(document.getElementById('meter-' + name), { childList: true });
          }
        }
        """);

    private async Task SaveScreenshotAsync(IPage page, string name)
    {
        var directory = Environment.GetEnvironmentVariable("CHATSTACK_SCREENSHOT_DIR") is { Length: > 0 } dir ? dir : Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        await page.ScreenshotAsync(new() { Path = path });
        output.WriteLine($"screenshot: {path}");
    }

    private static long Number(string? shown) => long.Parse((shown ?? "").Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture);
}
