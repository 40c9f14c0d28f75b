using System.Text.RegularExpressions;
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

    /// <summary>The session the page shows, from its address.</summary>
    public static string SessionIdOf(IPage page) => SessionInUrl().Match(page.Url).Groups[1].Value;

    /// <summary>What the page's own renderer shows for <paramref name="markdown"/> (the stored text, rendered once).</summary>
    public static Task<string> RenderAsync(IPage page, string markdown) => page.EvaluateAsync<string>("""
        async text => {
          const { renderMarkdown } = await import('./js/render.js');
          const box = document.createElement('div');
          renderMarkdown(box, text);
          return box.textContent;
        }
        """, markdown);

    [GeneratedRegex("#session=(.+)$")]
    private static partial Regex SessionInUrl();
}
