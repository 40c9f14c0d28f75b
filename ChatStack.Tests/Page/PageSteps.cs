using System.Text;
using System.Text.RegularExpressions;
using ChatStack.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>What the page tests do the same way, whichever chat API serves the page.</summary>
internal static partial class PageSteps
{
    /// <summary>Signs in from the sign-in form as <paramref name="userId"/> (the development token endpoint).</summary>
    public static async Task SignInAsync(IPage page, string userId)
    {
        await page.GetByLabel("User id").FillAsync(userId);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByText($"Signed in as {userId}")).ToBeVisibleAsync();
    }

    /// <summary>Types a message, sends it with Enter and waits for the answer to finish; the chat POST's response.</summary>
    public static async Task<IResponse> SendAsync(IPage page, string message)
    {
        // As a user would: Send is off while the app still loads after a sign-in.
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        var turns = await page.Locator(".turn[data-role=assistant]").CountAsync();
        await page.GetByLabel("Message").FillAsync(message);
        var response = await page.RunAndWaitForResponseAsync(() => page.GetByLabel("Message").PressAsync("Enter"), IsChatPost);
        var answer = page.Locator(".turn[data-role=assistant]").Nth(turns);
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });
        return response;
    }

    /// <summary>Sends <paramref name="message"/> and returns once some of the answer is on screen, while it still streams.</summary>
    public static async Task StartAnswerAsync(IPage page, string message)
    {
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send" })).ToBeEnabledAsync();
        await page.GetByLabel("Message").FillAsync(message);
        await page.GetByLabel("Message").PressAsync("Enter");
        await page.WaitForFunctionAsync(
            "() => { const t = document.querySelector('.turn[data-role=assistant][aria-busy=true] .text'); return t && t.textContent.length > 200; }",
            null, new() { Timeout = 30_000 });
    }

    public static bool IsChatPost(IResponse response) =>
        response.Request.Method == "POST" && response.Url.EndsWith("/api/chat", StringComparison.Ordinal);

    /// <summary>
    /// Answers an intercepted request with the API's real response, its body passed through <paramref name="edit"/>
    /// (to cut it, as a proxy would) and delivered all at once; the body as the API sent it.
    /// </summary>
    public static async Task<string> PassThroughAsync(IRoute route, Func<string, string>? edit = null)
    {
        var real = await route.FetchAsync(new() { Timeout = 60_000 });
        var body = await real.TextAsync();
        var headers = real.Headers.Where(h => h.Key is not ("content-length" or "transfer-encoding")).ToDictionary(h => h.Key, h => h.Value);
        await route.FulfillAsync(new() { Status = real.Status, Headers = headers, Body = edit is null ? body : edit(body) });
        return body;
    }

    /// <summary>The events of an SSE body, comments left out.</summary>
    public static async Task<List<SseMessage>> ParseSseAsync(string body)
    {
        var events = new List<SseMessage>();
        await foreach (var message in Sse.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(body))))
        {
            if (!message.IsComment)
            {
                events.Add(message);
            }
        }

        return events;
    }

    /// <summary>The session the page shows, from its address.</summary>
    public static string SessionIdOf(IPage page) => SessionInUrl().Match(page.Url).Groups[1].Value;

    /// <summary>What the page's own renderer shows for <paramref name="markdown"/> (the stored text, rendered once).</summary>
    public static Task<string> RenderAsync(IPage page, string markdown) => RenderedAsync(page, markdown, html: false);

    /// <summary>The markup the page's own renderer makes of <paramref name="markdown"/>, rendered once.</summary>
    public static Task<string> RenderHtmlAsync(IPage page, string markdown) => RenderedAsync(page, markdown, html: true);

    private static Task<string> RenderedAsync(IPage page, string markdown, bool html) => page.EvaluateAsync<string>("""
        async ([text, html]) => {
          const { renderMarkdown } = await import('./js/render.js');
          const box = document.createElement('div');
          renderMarkdown(box, text);
          return html ? box.innerHTML : box.textContent;
        }
        """, new object[] { markdown, html });

    [GeneratedRegex("#session=(.+)$")]
    private static partial Regex SessionInUrl();
}
