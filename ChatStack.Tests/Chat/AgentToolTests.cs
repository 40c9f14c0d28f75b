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
    public void The_calculator_evaluates_arithmetic(string expression, double expected) =>
        Assert.Equal(expected, Calculator.Evaluate(expression), 10);

    [Theory]
    [InlineData("1 +")]
    [InlineData("System.IO.File.Delete(\"x\")")]
    [InlineData("1 / 0")]
    [InlineData("2 * * 3")]
    public void The_calculator_refuses_what_is_not_arithmetic(string expression) =>
        Assert.ThrowsAny<Exception>(() => Calculator.Evaluate(expression));

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
        var kernel = new Kernel();
        kernel.Plugins.AddFromObject(new ChatTools(_ => Task.FromResult<IReadOnlyList<ChatMessageRecord>>([]), TimeProvider.System), ChatTools.PluginName);
        var model = new OfflineChatCompletionService(TokenCounterFactory.Default.ForEncoding("o200k_base"), new OfflineModelOptions { DeltaDelayMs = 0 });
        var history = new ChatHistory();
        history.AddUserMessage("What time is it in Montevideo?");

        var answer = await model.GetChatMessageContentsAsync(history, new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto(autoInvoke: false) }, kernel);

        var call = Assert.Single(answer.Single().Items.OfType<FunctionCallContent>());
        Assert.Equal((ChatTools.TimeNow, "America/Montevideo"), (call.FunctionName, call.Arguments?["time_zone"]?.ToString()));
    }

    [Theory]
    [InlineData("Mars/Olympus")]
    [InlineData("../../../etc/passwd")]
    [InlineData("Not a zone")]
    [InlineData("")]
    public void An_unknown_time_zone_is_named_back_without_the_servers_paths(string timeZone)
    {
        var tools = new ChatTools(_ => Task.FromResult<IReadOnlyList<ChatMessageRecord>>([]), TimeProvider.System);

        var error = Assert.Throws<ArgumentException>(() => tools.GetTimeNow(timeZone));

        // What the tool filter reports to the model and in tool_end.
        Assert.Equal($"Unknown time zone '{timeZone}': use an IANA id such as Europe/Paris or Asia/Tokyo.", error.GetBaseException().Message);
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
        var loads = 0;
        var tools = new ChatTools(_ => Task.FromResult<IReadOnlyList<ChatMessageRecord>>(loads++ == 0 ? history : []), time);
        Assert.StartsWith("2026-03-01 21:00 (Asia/Tokyo", tools.GetTimeNow("Asia/Tokyo"));
        // What models pass instead of an id: another case, or a city.
        Assert.StartsWith("2026-03-01 21:00 (Asia/Tokyo", tools.GetTimeNow("asia/tokyo"));
        Assert.StartsWith("2026-03-01 12:00 (Europe/Lisbon, UTC+00:00)", tools.GetTimeNow("Lisbon"));
        Assert.StartsWith("2026-03-01 04:00 (America/Los_Angeles", tools.GetTimeNow("San Francisco"));
        Assert.Contains("Miso", await tools.SearchAsync("cat name", default));
        Assert.StartsWith("No earlier message", await tools.SearchAsync("dog", default));
        // The history is loaded once per run, however many searches the agent makes.
        Assert.Contains("Miso", await tools.SearchAsync("Miso", default));
        Assert.Equal(1, loads);
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
        var tools = new ChatTools(_ => Task.FromResult<IReadOnlyList<ChatMessageRecord>>(history), TimeProvider.System);

        var result = await tools.SearchAsync("Miso", default);

        Assert.Contains("The cat is called Miso.", result);
        Assert.Contains("] …", result);
        Assert.EndsWith("…", result);
    }
}
