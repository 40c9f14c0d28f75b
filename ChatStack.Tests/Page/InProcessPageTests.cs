using System.Text.Json;
using ChatStack.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>
/// Page tests against the chat API in this process on its in-memory store, serving the page from the source tree:
/// each test starts it with the settings it needs, over the offline model at full speed.
/// </summary>
public abstract class InProcessPageTests(BrowserFixture browsers) : IClassFixture<BrowserFixture>, IAsyncLifetime
{
    private readonly List<IBrowserContext> _contexts = [];
    private ChatApiHost? _host;

    protected ChatApiHost Host => _host ?? throw new InvalidOperationException("The API starts with the first page a test opens.");

    /// <summary>What the page's scripts threw, in every window the test opened.</summary>
    protected List<string> PageErrors { get; } = [];

    /// <summary>
    /// Opens the page signed in as <paramref name="userId"/>, in a window of its own; the first call starts the API,
    /// with <paramref name="settings"/> over the defaults.
    /// </summary>
    protected async Task<IPage> OpenSignedInAsync(string userId, IReadOnlyDictionary<string, string?>? settings = null, int width = 1100, int height = 860)
    {
        if (_host is null)
        {
            var all = new Dictionary<string, string?>
            {
                ["Chat:Offline:DeltaDelayMs"] = "0",
                ["ENABLE_FIRESTORE_WRITE"] = "false",
                ["ENABLE_PUBSUB"] = "false",
            };
            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            {
                all[key] = value;
            }

            _host = await ChatApiHost.StartAsync("127.0.0.1:9", all, webRoot: ChatApiHost.PageRoot);
        }
        else if (settings is not null)
        {
            throw new InvalidOperationException("The API has started already, with the settings of the first page.");
        }

        var browser = await browsers.GetAsync();
        var context = await browser.NewContextAsync(new() { BaseURL = _host.Address.ToString(), ViewportSize = new() { Width = width, Height = height } });
        _contexts.Add(context);
        var page = await context.NewPageAsync();
        page.PageError += (_, error) => PageErrors.Add(error);
        await page.GotoAsync("/");
        await PageSteps.SignInAsync(page, userId);
        return page;
    }

    /// <summary>The messages the API stored for a session, read as its user.</summary>
    protected async Task<List<JsonElement>> StoredMessagesAsync(string userId, string sessionId)
    {
        using var http = Host.CreateClient();
        var api = await ChatApiClient.SignInAsync(http, userId);
        return [.. (await api.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray()];
    }

    /// <summary>The answer on the page is the one the API stored for the page's session, finished.</summary>
    protected async Task AssertStoredAnswerShownAsync(IPage page, string userId)
    {
        var stored = (await StoredMessagesAsync(userId, PageSteps.SessionIdOf(page))).Last();
        Assert.Equal("stop", stored.GetProperty("finish_reason").GetString());
        Assert.Equal(await PageSteps.RenderAsync(page, stored.GetProperty("content").GetString()!),
            await page.Locator(".turn[data-role=assistant] .text").TextContentAsync());
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

        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }
}
