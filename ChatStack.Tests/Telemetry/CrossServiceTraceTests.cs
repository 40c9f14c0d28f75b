using Aspire.Hosting.Testing;
using ChatStack.Contracts.Telemetry;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Telemetry;

/// <summary>
/// The whole AppHost (Aspire.Hosting.Testing) with every service exporting OTLP to the fixture's receiver: what
/// the dashboard would show for one chat.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class CrossServiceTraceTests(StackFixture stack, ITestOutputHelper output)
{
    [Fact]
    public async Task One_chat_is_one_trace_across_the_chat_api_and_the_worker_and_the_provisioner_traced_its_run()
    {
        var chat = await ChatApiClient.SignInAsync(stack.App.CreateHttpClient("chat-api"), "trace-user");
        await chat.ChatAsync(new { message = "What is (12.5 + 3) * 4?" });
        var session = chat.LastSessionId!;

        var agent = await WaitForAsync(spans => spans.FirstOrDefault(s => s.Service == "chat-api" && s.Name == "invoke_agent chatstack"
            && s.Attributes.GetValueOrDefault(GenAiAttributes.ConversationId) == session));
        // Both tables' rows of this turn: the user and assistant messages, and the tool invocation.
        var worker = await WaitForAsync(spans =>
        {
            var turn = spans.Where(s => s.TraceId == agent.TraceId && s.Service == "analytics-worker").ToList();
            return turn.Any(s => s.Name == "insertAll chat_events") && turn.Any(s => s.Name == "insertAll tool_invocations")
                ? turn.First(s => s.Name == "process chat-events") : null;
        });
        var trace = stack.Otlp.Spans.Where(s => s.TraceId == agent.TraceId).ToList();
        output.WriteLine(string.Join("\n", trace.Select(s => $"{s.Service,-18} {s.Name}")));

        // The worker's span continues the trace from a chat API span (the one that wrote the record).
        Assert.Contains(trace, s => s.Service == "chat-api" && s.SpanId == worker.ParentSpanId);
        Assert.Contains(trace, s => s.Service == "chat-api" && s.Name.StartsWith("chat "));
        Assert.Contains(trace, s => s.Service == "chat-api" && s.Name == "execute_tool calculate");
        Assert.Contains(trace, s => s.Service == "chat-api" && s.Name == "commit messages");
        Assert.Contains(stack.Otlp.Spans, s => s.Service == "chat-api" && s.Name == "send chat-events");
        // Aspire turns content capture on in run mode; the AppHost turns it back off for the chat API.
        Assert.All(trace, s => Assert.DoesNotContain(s.Attributes.Keys, k => k is GenAiAttributes.InputMessages or GenAiAttributes.OutputMessages
            or GenAiAttributes.ToolCallArguments or GenAiAttributes.ToolCallResult));
        Assert.Contains(trace, s => s.Name == "invoke_agent chatstack" && s.Attributes.ContainsKey(BudgetAttributes.Remaining));

        // The provisioner's run at start-up: a span per resource with its outcome.
        var provisioner = stack.Otlp.Spans.Where(s => s.Service == "provisioner").ToList();
        Assert.Contains(provisioner, s => s.Name == "provision");
        Assert.Contains(provisioner, s => s.Name.StartsWith("provision ") && s.Attributes.ContainsKey("chatstack.provision.outcome"));
        output.WriteLine(string.Join("\n", provisioner.Select(s => $"{s.Name} {string.Join(' ', s.Attributes.Select(a => $"{a.Key}={a.Value}"))}")));
    }

    private async Task<ReceivedSpan> WaitForAsync(Func<IReadOnlyList<ReceivedSpan>, ReceivedSpan?> find)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (find(stack.Otlp.Spans) is { } span)
            {
                return span;
            }

            Assert.True(DateTime.UtcNow < deadline, $"not seen within 60 s; services seen: {string.Join(", ", stack.Otlp.Spans.Select(s => s.Service).Distinct())}");
            await Task.Delay(250);
        }
    }
}
