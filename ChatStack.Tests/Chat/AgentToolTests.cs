using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Sessions;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

public class AgentToolTests
{
    [Theory]
    [InlineData("1 + 2 * 3", 7)]
    [InlineData("(12.5 + 3) * 4", 62)]
    [InlineData("2 ^ 10", 1024)]
    [InlineData("-3 + 10 / 4", -0.5)]
    public void The_calculator_evaluates_arithmetic(string expression, double expected) =>
        Assert.Equal(expected, Calculator.Evaluate(expression), 10);

    [Theory]
    [InlineData("1 +")]
    [InlineData("System.IO.File.Delete(\"x\")")]
    [InlineData("1 / 0")]
    public void The_calculator_refuses_what_is_not_arithmetic(string expression) =>
        Assert.ThrowsAny<Exception>(() => Calculator.Evaluate(expression));

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
        Assert.Contains("Miso", await tools.SearchAsync("cat name", default));
        Assert.StartsWith("No earlier message", await tools.SearchAsync("dog", default));
        // The history is loaded once per run, however many searches the agent makes.
        Assert.Contains("Miso", await tools.SearchAsync("Miso", default));
        Assert.Equal(1, loads);
    }
}
