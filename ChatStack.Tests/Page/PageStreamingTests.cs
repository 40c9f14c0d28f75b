using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ChatStack.Tests.Page;

/// <summary>How the page draws an answer while it streams, in headless Chromium against the chat API in process.</summary>
public sealed class PageStreamingTests(BrowserFixture browsers) : InProcessPageTests(browsers)
{
    [ChromiumFact]
    public async Task A_long_answer_arriving_at_once_is_drawn_a_few_times_not_once_per_delta()
    {
        var page = await OpenSignedInAsync("page-burst", new Dictionary<string, string?> { ["Chat:Offline:LongAnswerSentences"] = "100" });
        await CountDrawsAsync(page);
        // The whole stream reaches the page in one go, as a reload's replay of a running answer does: thousands of
        // deltas, each of which used to redraw the whole answer.
        string? body = null;
        await page.RouteAsync("**/api/chat", async route => body = await PageSteps.PassThroughAsync(route));

        await PageSteps.SendAsync(page, "Write a long essay about drawing.");

        var deltas = (await PageSteps.ParseSseAsync(body!)).Count(e => e.Event == "message_delta");
        Assert.True(deltas > 1_000, $"a long answer in many deltas ({deltas})");
        var draws = await page.EvaluateAsync<int>("() => window.draws");
        Assert.True(draws * 20 < deltas, $"{draws} draws for {deltas} deltas");
        await AssertStoredAnswerShownAsync(page, "page-burst");
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task Scrolling_up_during_an_answer_keeps_the_place_and_scrolling_back_to_its_end_follows_it_again()
    {
        var page = await OpenSignedInAsync("page-scroll", new Dictionary<string, string?>
        {
            ["Chat:Offline:DeltaDelayMs"] = "10",
            ["Chat:Offline:LongAnswerSentences"] = "80",
        }, height: 600);
        await page.GetByLabel("Message").FillAsync("Write a long essay about scrolling.");
        await page.GetByLabel("Message").PressAsync("Enter");
        var answer = page.Locator(".turn[data-role=assistant]");

        // While the reader is at the end, the page follows the answer down.
        await page.WaitForFunctionAsync("() => scrollY > 200", null, new() { Timeout = 30_000 });

        // The reader scrolls up to read from the start: the answer grows on, the page stays where they are.
        await page.EvaluateAsync("() => scrollTo(0, 0)");
        await WaitForMoreTextAsync(page, 800);
        Assert.Equal(0, await page.EvaluateAsync<double>("() => scrollY"));

        // Back at the end, the page follows the answer again, to its last line, and stays there once it ends.
        await page.EvaluateAsync("() => scrollTo(0, document.documentElement.scrollHeight)");
        var atEnd = await page.EvaluateAsync<double>("() => scrollY");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 60_000 });
        await Expect(page.GetByLabel("Message")).ToBeFocusedAsync();
        await Expect(page.Locator("#session-info")).ToContainTextAsync("2 messages"); // the bar above has grown
        Assert.True(await page.EvaluateAsync<double>("() => scrollY") > atEnd, "the page scrolled on with the answer");
        var end = await answer.EvaluateAsync<double[]>("a => [a.getBoundingClientRect().bottom, innerHeight]");
        Assert.True(end[0] <= end[1] + 1, $"the answer's end is in view ({end[0]} in {end[1]})");

        // Drawn in many steps, the answer is what drawing the stored text once gives.
        var stored = (await StoredMessagesAsync("page-scroll", PageSteps.SessionIdOf(page))).Last().GetProperty("content").GetString()!;
        Assert.Equal(await PageSteps.RenderHtmlAsync(page, stored), await answer.Locator(".text").InnerHTMLAsync());
        Assert.Empty(PageErrors);
    }

    [ChromiumFact]
    public async Task A_numbered_list_split_by_blank_lines_goes_on_from_its_first_number()
    {
        var page = await OpenSignedInAsync("page-lists");

        Assert.Equal("<ol><li>foo</li></ol><ol start=\"2\"><li>bar</li></ol><ol start=\"3\"><li>baz</li></ol>",
            await PageSteps.RenderHtmlAsync(page, "1. foo\n\n2. bar\n\n3. baz"));
        Assert.Equal("<p>Steps:</p><ol start=\"7\"><li>seven</li><li>eight</li></ol>",
            await PageSteps.RenderHtmlAsync(page, "Steps:\n7. seven\n8. eight"));
    }

    [ChromiumFact]
    public async Task Text_drawn_as_it_grows_comes_out_as_drawn_whole_at_every_step()
    {
        var page = await OpenSignedInAsync("page-growing");
        // Fences with blank lines inside, text after a closing fence, lists, headings, a fence left open.
        const string text = "Intro *one*\nline two\n\n```js\nlet a = 1;\n\nlet b = 2;\n```tail text\n\n- a\n- b\n\n1. x\n\n2. y\n# Head\n\n\n```\nopen fence\n\nstill code";
        var mismatches = await page.EvaluateAsync<string[]>("""
            async text => {
              const { GrowingMarkdown, renderMarkdown } = await import('./js/render.js');
              const growing = document.createElement('div');
              const drawer = new GrowingMarkdown(growing);
              const whole = document.createElement('div');
              const mismatches = [];
              for (let end = 1; end <= text.length; end++) {
                drawer.render(text.slice(0, end));
                renderMarkdown(whole, text.slice(0, end));
                if (growing.innerHTML !== whole.innerHTML) mismatches.push(JSON.stringify(text.slice(0, end)));
              }
              return mismatches;
            }
            """, text);
        Assert.Empty(mismatches);
    }

    /// <summary>Counts the draws of an answer's text from now on: the changes that put new blocks into it.</summary>
    private static Task CountDrawsAsync(IPage page) => page.EvaluateAsync("""
        () => {
          window.draws = 0;
          new MutationObserver(records => {
            for (const r of records) {
              if (r.addedNodes.length > 0 && r.target instanceof Element && r.target.matches('.turn[data-role=assistant] > .text')) window.draws++;
            }
          }).observe(document.getElementById('messages'), { childList: true, subtree: true });
        }
        """);

    /// <summary>Waits until the streaming answer has <paramref name="characters"/> more characters on screen.</summary>
    private static async Task WaitForMoreTextAsync(IPage page, int characters)
    {
        const string Text = "document.querySelector('.turn[data-role=assistant] .text').textContent.length";
        var length = await page.EvaluateAsync<int>($"() => {Text}");
        await page.WaitForFunctionAsync($"n => {Text} > n", length + characters, new() { Timeout = 30_000 });
    }
}
