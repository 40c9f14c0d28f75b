#:package Microsoft.Playwright
#:property PublishAot=false
// Opens the Aspire dashboard's trace detail page in headless Chromium and saves a screenshot of it.
// Usage: dotnet run screenshot.cs -- <dashboard-url> <trace-id> <output.png>
// The dashboard is a Blazor Server app: it needs a real browser session (a plain `chromium --screenshot` captures
// the page before its circuit has rendered anything).
using Microsoft.Playwright;

var (dashboard, traceId, output) = (args[0].TrimEnd('/'), args[1], args[2]);
using var playwright = await Playwright.CreateAsync();
await using var browser = await playwright.Chromium.LaunchAsync(new()
{
    ExecutablePath = Environment.GetEnvironmentVariable("CHROMIUM") ?? "/usr/bin/chromium",
    Headless = true,
    Args = ["--no-sandbox"],
});
var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1600, Height = 1250 } });
await page.GotoAsync($"{dashboard}/traces/detail/{traceId}");
// The waterfall has rendered once the agent span's row is there.
await page.GetByText("invoke_agent chatstack").First.WaitForAsync(new() { Timeout = 30_000 });
await page.WaitForTimeoutAsync(1500);
await page.ScreenshotAsync(new() { Path = output });
Console.WriteLine($"saved {output}");
