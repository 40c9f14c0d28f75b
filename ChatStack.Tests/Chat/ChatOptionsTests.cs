using ChatStack.ChatApi.Agent;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Tests.Chat;

/// <summary>
/// Chat settings that would fail requests later (a heartbeat timer of zero, a default budget every request refuses, a
/// message Firestore cannot keep) are refused at start-up, naming the setting: bound from configuration as the API
/// binds them. AnswerSizeLimitTests shows a refused setting stopping a real host.
/// </summary>
public sealed class ChatOptionsTests
{
    [Fact]
    public void The_defaults_are_valid() => Assert.Empty(Bind([]).Problems());

    [Theory]
    [InlineData("MaxMessageChars", "0", "Chat:MaxMessageChars is 0; it must lie in 1..172032")]
    [InlineData("MaxMessageChars", "200000", "Chat:MaxMessageChars is 200000; it must lie in 1..172032")]
    [InlineData("MaxRequestBytes", "100", "Chat:MaxRequestBytes is 100; it must lie in 1024..16777216")]
    [InlineData("MaxRequestBytes", "1073741824", "Chat:MaxRequestBytes is 1073741824; it must lie in 1024..16777216")]
    [InlineData("MinBudget", "0", "Chat:MinBudget and Chat:MaxBudgetPerRequest are 0 and 32000")]
    [InlineData("MaxBudgetPerRequest", "10", "Chat:MinBudget and Chat:MaxBudgetPerRequest are 64 and 10")]
    [InlineData("DefaultBudget", "50000", "Chat:DefaultBudget is 50000; it must lie in Chat:MinBudget..Chat:MaxBudgetPerRequest (64..32000)")]
    [InlineData("SummarizeShare", "0", "Chat:SummarizeShare is 0; it must lie in (0, 1]")]
    [InlineData("SummarizeShare", "1.5", "Chat:SummarizeShare is 1.5; it must lie in (0, 1]")]
    [InlineData("SummarizeBudgetShare", "0", "Chat:SummarizeBudgetShare is 0; it must lie in (0, 1]")]
    [InlineData("SummarizeBudgetShare", "1.01", "Chat:SummarizeBudgetShare is 1.01; it must lie in (0, 1]")]
    [InlineData("KeepRecentMessages", "-1", "Chat:KeepRecentMessages is -1; it must be 0 or more")]
    [InlineData("CheckpointTokens", "0", "Chat:CheckpointTokens is 0; it must be 1 or more")]
    [InlineData("MaxToolRounds", "-1", "Chat:MaxToolRounds is -1; it must lie in 0..32")]
    [InlineData("HeartbeatSeconds", "0", "Chat:HeartbeatSeconds is 0; it must lie in (0, 3600]")]
    [InlineData("ResumeWindowSeconds", "-5", "Chat:ResumeWindowSeconds is -5; it must lie in 0..86400")]
    [InlineData("ReconnectGraceSeconds", "100000", "Chat:ReconnectGraceSeconds is 100000; it must lie in 0..86400")]
    [InlineData("TurnLeaseSeconds", "1", "Chat:TurnLeaseSeconds is 1; it must lie in 3..3600 (a run renews it every third)")]
    [InlineData("Offline:DeltaDelayMs", "-1", "Chat:Offline:DeltaDelayMs is -1; it must be 0 or more")]
    public void A_setting_out_of_range_is_named_with_its_value_and_range(string setting, string value, string problem)
    {
        var problems = Bind(new() { [$"Chat:{setting}"] = value }).Problems().ToList();

        Assert.StartsWith(problem, Assert.Single(problems));
    }

    [Fact]
    public void Every_problem_is_told_at_once()
    {
        var problems = Bind(new() { ["Chat:HeartbeatSeconds"] = "0", ["Chat:CheckpointTokens"] = "0", ["Chat:MaxAnswerBytes"] = "0" }).Problems().ToList();

        Assert.Equal(3, problems.Count);
    }

    private static ChatOptions Bind(Dictionary<string, string?> settings)
    {
        var options = new ChatOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(ChatOptions.Section).Bind(options);
        return options;
    }
}
