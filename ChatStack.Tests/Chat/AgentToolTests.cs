using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Sessions;
using ChatStack.Tokenization;
using Microsoft.Extensions.Time.Testing;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace ChatStack.Tests.Chat;

public class AgentToolTests
{
    [Theory]
    [InlineData("1 + 2 * 3", 7)]
    [InlineData("(12.5 + 3) * 4", 62)]
    [InlineData("2 ^ 10", 1024)]
    [InlineData("-3 + 10 / 4", -0.5)]
    [InlineData("2**10", 1024)]
    [InlineData("2 * 3 ** 2", 18)]
    [InlineData("2 ** 3 ^ 2", 512)]
    // A sign binds less tightly than a power, as in Python and mathematics, and may follow one.
    [InlineData("-2^2", -4)]
    [InlineData("-2 ** 2", -4)]
    [InlineData("2^-1", 0.5)]
    [InlineData("10 % 3", 1)]
    [InlineData("7 % 2.5 * 2", 4)]
    [InlineData("1e3 + 2.5E-1", 1000.25)]
    [InlineData("6.02e+23 / 6.02e23", 1)]
    [InlineData("sqrt(16) + abs(-2)", 6)]
    [InlineData("log(1000) + log2(8) + ln(e)", 7)]
    [InlineData("round(2.5) + floor(-1.5) + ceil(1.2)", 3)]
    [InlineData("2 * pi / tau", 1)]
    [InlineData("SQRT (9)", 3)]
    [InlineData("−3 × 2 ÷ 4", -1.5)]
    [InlineData("+4", 4)]
    public void The_calculator_evaluates_arithmetic(string expression, double expected) =>
        Assert.Equal(expected, Calculator.Evaluate(expression), 10);

    [Theory]
    [InlineData("1 +")]
    [InlineData("System.IO.File.Delete(\"x\")")]
    [InlineData("1 / 0")]
    [InlineData("2 * * 3")]
    [InlineData("2e")]
    [InlineData("sqrt 4")]
    public void The_calculator_refuses_what_is_not_arithmetic(string expression)
    {
        // Refused with a message the model can act on, not by a bug (a NullReferenceException would also "refuse").
        var e = Assert.ThrowsAny<Exception>(() => Calculator.Evaluate(expression));
        Assert.True(e is FormatException or ArithmeticException, $"{e.GetType().Name}: {e.Message}");
        Assert.Contains($"'{expression}'", e.Message);
    }

    [Theory]
    [InlineData("sqrt(-1)", "'sqrt(-1)' has no finite value.")]
    [InlineData("1e308 * 10", "'1e308 * 10' has no finite value.")]
    [InlineData("5 % 0", "'5 % 0' has no finite value.")]
    [InlineData("foo(2)", "Unknown name 'foo' in 'foo(2)': the calculator knows sqrt, cbrt, abs, exp, ln, log, log10, log2, sin, cos, tan, asin, acos, atan, floor, ceil, round and pi, e, tau.")]
    public void A_calculator_error_says_what_the_model_can_do_instead(string expression, string message) =>
        Assert.Equal(message, Assert.ThrowsAny<Exception>(() => Calculator.Evaluate(expression)).Message);

    [Theory]
    [InlineData("What is 17*23?", "calculate", "17*23")]
    [InlineData("compute sqrt(-1) please", "calculate", "sqrt(-1)")]
    [InlineData("what is 1e308*10", "calculate", "1e308*10")]
    [InlineData("what is 10 % 3?", "calculate", "10 % 3")]
    [InlineData("and 2 * pi?", "calculate", "2 * pi")]
    [InlineData("what is atan(1)*4?", "calculate", "atan(1)*4")]
    [InlineData("What time is it in UTC+5?", "time_now", "UTC+5")]
    [InlineData("time at GMT-03:30", "time_now", "GMT-03:30")]
    [InlineData("What is 5!", null, null)]
    [InlineData("What is 50% of the market?", null, null)]
    [InlineData("We met on 2026-11-27.", null, null)]
    [InlineData("calculate (((((", null, null)]
    [InlineData("It was -5 outside", null, null)]
    public async Task The_offline_model_passes_the_expression_or_offset_a_message_holds(string message, string? tool, string? argument)
    {
        var calls = await OfflineToolCalls(message);

        Assert.Equal(tool is null ? [] : [(tool, argument)], calls.Select(c => (c.FunctionName, (string?)c.Arguments?.Values.Single()?.ToString())));
    }

    [Theory]
    [InlineData("UTC+5", "2026-03-01 17:00 (UTC+05:00, UTC+05:00)")]
    [InlineData("gmt-03:30", "2026-03-01 08:30 (UTC-03:30, UTC-03:30)")]
    [InlineData("+0545", "2026-03-01 17:45 (UTC+05:45, UTC+05:45)")]
    [InlineData("UTC−8", "2026-03-01 04:00 (UTC-08:00, UTC-08:00)")]
    [InlineData("Etc/GMT-5", "2026-03-01 17:00 (Etc/GMT-5, UTC+05:00)")]
    public void The_time_at_a_utc_offset_is_that_offset_from_utc(string timeZone, string expected)
    {
        var tools = new ChatTools(_ => AsyncEnumerable.Empty<ChatMessageRecord>(), new FakeTimeProvider(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero)));

        Assert.Equal(expected, tools.GetTimeNow(timeZone));
    }

    [Theory]
    [InlineData("What time is it in Lisbon?", "Europe/Lisbon")]
    [InlineData("what time is it in são paulo", "America/Sao_Paulo")]
    [InlineData("Time in Port-au-Prince, please", "America/Port-au-Prince")]
    [InlineData("The time in Ho Chi Minh City", "Asia/Ho_Chi_Minh")]
    [InlineData("Time in New York and in Tokyo?", "America/New_York")]
    [InlineData("What's the time in San Francisco?", "America/Los_Angeles")]
    [InlineData("What time is Easter dinner?", null)]
    [InlineData("What time is it in New Jersey?", null)]
    [InlineData("What time is it?", null)]
    public void A_city_is_found_in_a_message_by_the_time_zone_named_after_it(string message, string? zone) =>
        Assert.Equal(zone, CityTimeZones.Find(message));

    [Fact]
    public async Task The_offline_model_asks_for_the_time_of_a_city_the_time_zone_database_knows()
    {
        var call = Assert.Single(await OfflineToolCalls("What time is it in Montevideo?"));

        Assert.Equal((ChatTools.TimeNow, "America/Montevideo"), (call.FunctionName, call.Arguments?["time_zone"]?.ToString()));
    }

    private static async Task<List<FunctionCallContent>> OfflineToolCalls(string message)
    {
        var kernel = new Kernel();
        kernel.Plugins.AddFromObject(new ChatTools(_ => AsyncEnumerable.Empty<ChatMessageRecord>(), TimeProvider.System), ChatTools.PluginName);
        var model = new OfflineChatCompletionService(TokenCounterFactory.Default.ForEncoding("o200k_base"), new OfflineModelOptions { DeltaDelayMs = 0 });
        var history = new ChatHistory();
        history.AddUserMessage(message);

        var answer = await model.GetChatMessageContentsAsync(history, new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto(autoInvoke: false) }, kernel);
        return answer.Single().Items.OfType<FunctionCallContent>().ToList();
    }

    [Theory]
    [InlineData("Mars/Olympus")]
    [InlineData("UTC+15")]
    [InlineData("UTC+5:07")]
    [InlineData("UTC+5:75")]
    [InlineData("../../../etc/passwd")]
    [InlineData("Not a zone")]
    [InlineData("")]
    public void An_unknown_time_zone_is_named_back_without_the_servers_paths(string timeZone)
    {
        var tools = new ChatTools(_ => AsyncEnumerable.Empty<ChatMessageRecord>(), TimeProvider.System);

        var error = Assert.Throws<ArgumentException>(() => tools.GetTimeNow(timeZone));

        // What the tool filter reports to the model and in tool_end.
        Assert.Equal($"Unknown time zone '{timeZone}': use an IANA id such as Europe/Paris or Asia/Tokyo, or an offset such as UTC+05:30.", error.GetBaseException().Message);
    }

    [Fact]
    public async Task Time_and_history_search_answer_from_their_inputs()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
        var history = new List<ChatMessageRecord>
        {
            new() { Id = "1", Role = "user", Content = "My cat is called Miso.", CreatedAt = time.GetUtcNow() },
            new() { Id = "2", Role = "assistant", Content = "Nice name!", CreatedAt = time.GetUtcNow() },
        };
        var tools = new ChatTools(_ => history.ToAsyncEnumerable(), time);
        Assert.StartsWith("2026-03-01 21:00 (Asia/Tokyo", tools.GetTimeNow("Asia/Tokyo"));
        // What models pass instead of an id: another case, or a city.
        Assert.StartsWith("2026-03-01 21:00 (Asia/Tokyo", tools.GetTimeNow("asia/tokyo"));
        Assert.StartsWith("2026-03-01 12:00 (Europe/Lisbon, UTC+00:00)", tools.GetTimeNow("Lisbon"));
        Assert.StartsWith("2026-03-01 04:00 (America/Los_Angeles", tools.GetTimeNow("San Francisco"));
        Assert.Contains("Miso", await tools.SearchAsync("cat name", default));
        Assert.StartsWith("No earlier message", await tools.SearchAsync("dog", default));
        Assert.Contains("Miso", await tools.SearchAsync("Miso", default));
    }

    [Fact]
    public async Task A_search_keeps_the_three_best_hits_most_terms_first_then_the_newest()
    {
        // 300 messages, read one at a time: the hits are ranked as they come, not after holding them all.
        var start = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        var history = Enumerable.Range(0, 300).Select(i => new ChatMessageRecord
        {
            Id = $"{i:D4}",
            Role = i % 7 == 0 ? "tool" : i % 2 == 0 ? "user" : "assistant",
            Content = (i >= 298 ? 0 : i % 5, i >= 298 ? 0 : i % 3) switch
            {
                (0, 0) => $"Note {i}: the cat Miso sleeps.",
                (0, _) => $"Note {i}: a cat.",
                (_, 0) => $"Note {i}: Miso.",
                _ => $"Note {i}: nothing.",
            },
            // Two messages share each time, so equal hits keep the order they were read in (the last two).
            CreatedAt = start.AddMinutes(i / 2),
        }).ToList();
        var tools = new ChatTools(_ => history.ToAsyncEnumerable(), TimeProvider.System);

        var result = await tools.SearchAsync("cat Miso", default);

        // What ranking every message at once gives (tool messages are not searched).
        var terms = HistorySearch.Terms("cat Miso");
        var expected = history.Where(m => m.Role != "tool")
            .Select(m => (Message: m, Match: HistorySearch.Match(m.Content, terms)))
            .Where(h => h.Match.Score > 0)
            .OrderByDescending(h => h.Match.Score).ThenByDescending(h => h.Message.CreatedAt)
            .Take(3)
            .Select(h => h.Message.Content);
        Assert.Equal(expected, result.Split(" | ").Select(hit => hit[(hit.IndexOf("] ", StringComparison.Ordinal) + 2)..]));
        Assert.StartsWith("[user 2026-03-01 14:29:00Z] Note 298: the cat Miso sleeps. | [assistant 2026-03-01 14:29:00Z] Note 299:", result);
    }

    [Theory]
    [InlineData("Did I mention my cat earlier?", "cat", "Two cats slept on the sofa.", 1)]
    [InlineData("cat", "cat", "We should communicate more.", 0)]
    [InlineData("東京", "東京", "来週は東京に行きます。", 1)]
    [InlineData("Ελληνικά script", "ελληνικά script", "Inputs in unexpected scripts such as Ελληνικά.", 2)]
    [InlineData("the", "the", "the end", 1)]
    public void History_search_matches_words_by_their_start_and_unspaced_scripts_anywhere(string query, string terms, string text, int score)
    {
        var found = HistorySearch.Terms(query);
        Assert.Equal(terms.Split(' '), found);
        Assert.Equal(score, HistorySearch.Match(text, found).Score);
    }

    [Fact]
    public async Task A_history_hit_deep_in_a_long_answer_is_shown_around_the_match()
    {
        var answer = string.Concat(Enumerable.Repeat("Budgets and limits were discussed at length. ", 40)) + "The cat is called Miso. " + new string('x', 500);
        var history = new List<ChatMessageRecord> { new() { Id = "1", Role = "assistant", Content = answer, CreatedAt = DateTimeOffset.UnixEpoch } };
        var tools = new ChatTools(_ => history.ToAsyncEnumerable(), TimeProvider.System);

        var result = await tools.SearchAsync("Miso", default);

        Assert.Contains("The cat is called Miso.", result);
        Assert.Contains("] …", result);
        Assert.EndsWith("…", result);
    }
}
