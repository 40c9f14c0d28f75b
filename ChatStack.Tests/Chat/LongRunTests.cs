using ChatStack.Tests.Support;
using ChatStack.Tokenization;

namespace ChatStack.Tests.Chat;

/// <summary>
/// A model that writes one long unbroken piece (a line of '=' with no end), through the real API, an OpenAI-compatible
/// server and the Firestore emulator: the answer's count stays linear (the run's deltas are held and shown in batches),
/// the text streamed is the text stored and counted, and a budget reached inside the run stops it at a model delta.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class LongRunTests(StackFixture stack, ITestOutputHelper output)
{
    private static readonly ITokenCounter Counter = TokenCounterFactory.Default.ForEncoding("o200k_base");

    [Theory]
    [InlineData(12_500, null)] // 100,000 '=': the whole run, ~1,560 tokens
    [InlineData(40_000, 2_000)] // 320,000 '=' asked; the budget ends it near 120,000
    public async Task A_long_unbroken_run_streams_as_stored_and_counted_and_a_budget_stops_it_at_a_model_delta(int chunks, int? budget)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.RepeatedAnswer = ("========", chunks);
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings());
        var client = await ChatApiClient.SignInAsync(host.Address, $"long-run-{chunks}");

        var events = await client.ChatAsync(budget is null
            ? new { message = "Draw me a line.", model = "test-gpt-4o" }
            : new { message = "Draw me a line.", model = "test-gpt-4o", budget_max = budget.Value });

        Assert.Null(events.FirstOrDefault(e => e.Event == "error")?.Payload.GetProperty("code").GetString());
        var done = Assert.Single(events, e => e.Event == "done").Payload;
        var usage = done.GetProperty("usage");
        var streamed = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));
        var answer = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().Last();
        Assert.Equal(streamed, answer.GetProperty("content").GetString());
        Assert.Equal(Counter.CountTokens(streamed), answer.GetProperty("tokens").GetInt32());

        // Each model_stream checkpoint is the exact count of the text streamed before it.
        var before = "";
        var checkpoints = 0;
        foreach (var e in events)
        {
            if (e.Event == "message_delta")
            {
                before += e.Payload.GetProperty("text").GetString();
            }
            else if (e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "model_stream")
            {
                Assert.Equal(Counter.CountTokens(before), e.Payload.GetProperty("completion").GetInt32());
                checkpoints++;
            }
        }

        Assert.True(checkpoints >= 4, $"{checkpoints} model_stream checkpoints");
        if (budget is null)
        {
            Assert.Equal("stop", done.GetProperty("finish_reason").GetString());
            Assert.Equal(new string('=', 8 * chunks), streamed);
        }
        else
        {
            // Cut at the end of the first model delta that reached the budget; the provider's stream was dropped.
            Assert.Equal("budget_exhausted", done.GetProperty("finish_reason").GetString());
            Assert.Equal(0, streamed.Length % 8);
            Assert.True(usage.GetProperty("total_tokens").GetInt32() >= budget);
            Assert.True(usage.GetProperty("prompt_tokens").GetInt32() + Counter.CountTokens(streamed.AsSpan(0, streamed.Length - 8)) < budget);
            Assert.Equal(Counter.CountTokens(streamed), usage.GetProperty("completion_tokens").GetInt32());
            Assert.InRange(await provider.RepeatedAnswerAbandoned.Task.WaitAsync(TimeSpan.FromSeconds(30)), streamed.Length / 8, chunks - 1);
        }

        output.WriteLine($"{streamed.Length:N0} characters in {events.Count(e => e.Event == "message_delta")} message_delta events, " +
            $"{answer.GetProperty("tokens").GetInt32()} tokens counted, {checkpoints} checkpoints");
    }
}
