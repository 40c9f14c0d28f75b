using Microsoft.Playwright;

namespace ChatStack.Tests.Page;

/// <summary>
/// The system's Chromium (Debian's <c>chromium</c> package; <c>CHATSTACK_CHROMIUM</c> overrides the path), driven by
/// Playwright. Playwright's own browser downloads are never used.
/// </summary>
public static class Chromium
{
    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable("CHATSTACK_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public static bool IsInstalled => File.Exists(ExecutablePath);

    /// <summary>In CI a missing browser fails the browser tests instead of skipping them.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync()
    {
        if (!IsInstalled)
        {
            throw new InvalidOperationException($"Chromium is not installed at {ExecutablePath} (apt-get install chromium, or set CHATSTACK_CHROMIUM).");
        }

        var playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            // Root in CI containers needs --no-sandbox; the rest keeps the browser from calling home during tests.
            Args =
            [
                "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                "--disable-sync", "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-first-run",
                "--metrics-recording-only", "--disable-dev-shm-usage",
            ],
        });
        return (playwright, browser);
    }
}

/// <summary>A fact that needs Chromium: skipped with the reason when it is missing locally, run (and failing) when CI=true.</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (!Chromium.IsInstalled && !Chromium.IsCi)
        {
            Skip = $"Chromium is not installed at {Chromium.ExecutablePath}: apt-get install chromium, or set CHATSTACK_CHROMIUM. (With CI=true this test fails instead.)";
        }
    }
}

/// <summary>One browser for a test class, launched on first use.</summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public async Task<IBrowser> GetAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_browser is null)
            {
                (_playwright, _browser) = await Chromium.LaunchAsync();
            }

            return _browser;
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }

        _playwright?.Dispose();
        _gate.Dispose();
    }
}
