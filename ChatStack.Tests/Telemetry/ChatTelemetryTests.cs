using System.Diagnostics;
using System.Net.Http.Json;
using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Telemetry;
using ChatStack.Contracts.Telemetry;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;

namespace ChatStack.Tests.Telemetry;

/// <summary>
/// The chat API in process against the stack's Firestore (and, where a test provisions one, Pub/Sub), with
/// OpenTelemetry's in-memory exporters added to the service defaults' own set-up.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class ChatTelemetryTests(StackFixture stack, ITestOutputHelper output)
{
    private const string ToolMessage = "What is (12.5 + 3) * 4?";
    private const string OfflineModel = "chatstack-offline-deterministic";

    private static readonly string[] ContentAttributes =
        [GenAiAttributes.InputMessages, GenAiAttributes.OutputMessages, GenAiAttributes.ToolCallArguments, GenAiAttributes.ToolCallResult];

    [Fact]
    public async Task A_chat_turn_with_a_tool_is_one_trace_of_genai_spans_with_budget_attributes_and_the_outbox_send_links_to_it()
    {
        var project = $"otel-{Guid.NewGuid():N}"[..20];
        using var clients = new EmulatorClients(stack, project);
        Assert.Equal(0, (await clients.ProvisionAsync(["provision"])).ExitCode);
        var telemetry = new TelemetryCapture();
        using var sampler = new SamplerView(ChatStackTelemetry.ChatApi);
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = project, ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost },
            configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-user");
        var events = await client.ChatAsync(new { message = ToolMessage, budget_max = 4000 });
        var done = events.Single(e => e.Event == "done").Payload;

        var agent = await telemetry.WaitForSpanAsync(s => s.DisplayName == "invoke_agent chatstack", TimeSpan.FromSeconds(10));
        var send = await telemetry.WaitForSpanAsync(s => s.DisplayName == "send chat-events" && s.Links.Any(l => l.Context.TraceId == agent.TraceId), TimeSpan.FromSeconds(15));
        var trace = telemetry.Spans.Where(s => s.TraceId == agent.TraceId).ToList();
        output.WriteLine(string.Join("\n", trace.Select(s => $"{s.DisplayName} [{s.Source.Name}] parent {s.ParentSpanId}")));

        // HTTP request → invoke_agent → chat ×2 (asks for the tool, then answers), execute_tool, Firestore commits.
        var server = Assert.Single(trace, s => s.Kind == ActivityKind.Server && s.DisplayName.Contains("/api/chat"));
        Assert.Equal(server.SpanId, agent.ParentSpanId);
        Assert.Equal(GenAiAttributes.Operations.InvokeAgent, agent.GetTagItem(GenAiAttributes.OperationName));
        Assert.Equal(GenAiAttributes.Providers.Offline, agent.GetTagItem(GenAiAttributes.ProviderName));
        Assert.Equal(client.LastSessionId, agent.GetTagItem(GenAiAttributes.ConversationId));
        Assert.Equal(OfflineModel, agent.GetTagItem(GenAiAttributes.RequestModel));
        var usage = done.GetProperty("usage");
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), agent.GetTagItem(GenAiAttributes.UsageInputTokens));
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), agent.GetTagItem(GenAiAttributes.UsageOutputTokens));
        Assert.Equal(4000, agent.GetTagItem(BudgetAttributes.Max));
        Assert.Equal(usage.GetProperty("budget_remaining").GetInt32(), agent.GetTagItem(BudgetAttributes.Remaining));
        Assert.Equal("finalize", agent.GetTagItem(BudgetAttributes.Phase));
        Assert.Equal(false, agent.GetTagItem(BudgetAttributes.ShouldSummarize));
        Assert.Equal("stop", agent.GetTagItem(BudgetAttributes.FinishReason));
        var phases = agent.Events.Where(e => e.Name == BudgetAttributes.PhaseEvent).Select(e => (string)e.Tags.Single(t => t.Key == BudgetAttributes.Phase).Value!).ToList();
        Assert.Equal(new[] { "ingress", "retrieval" }, phases.Take(2));
        Assert.Contains("tool", phases);
        Assert.Equal("finalize", phases[^1]);

        var calls = trace.Where(s => s.DisplayName == $"chat {OfflineModel}").OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, calls.Count);
        Assert.All(calls, call =>
        {
            Assert.Equal(agent.SpanId, call.ParentSpanId);
            Assert.Equal(ActivityKind.Client, call.Kind);
            Assert.Equal(GenAiAttributes.Operations.Chat, call.GetTagItem(GenAiAttributes.OperationName));
            Assert.Equal(GenAiAttributes.Providers.Offline, call.GetTagItem(GenAiAttributes.ProviderName));
            Assert.Equal(OfflineModel, call.GetTagItem(GenAiAttributes.RequestModel));
            Assert.Equal(OfflineModel, call.GetTagItem(GenAiAttributes.ResponseModel));
            Assert.True((int)call.GetTagItem(GenAiAttributes.UsageInputTokens)! > 0);
            Assert.True((int)call.GetTagItem(GenAiAttributes.UsageOutputTokens)! > 0);
            Assert.Equal("provider", call.GetTagItem(BudgetAttributes.UsageSource));
        });
        Assert.Equal(new[] { "tool_calls" }, (string[])calls[0].GetTagItem(GenAiAttributes.ResponseFinishReasons)!);
        Assert.Equal(new[] { "stop" }, (string[])calls[1].GetTagItem(GenAiAttributes.ResponseFinishReasons)!);
        // The provider's per-call usage adds up to what the run reports after reconciliation.
        Assert.Equal(usage.GetProperty("total_tokens").GetInt32(),
            calls.Sum(c => (int)c.GetTagItem(GenAiAttributes.UsageInputTokens)! + (int)c.GetTagItem(GenAiAttributes.UsageOutputTokens)!));

        var tool = Assert.Single(trace, s => s.DisplayName == "execute_tool calculate");
        Assert.Equal(agent.SpanId, tool.ParentSpanId);
        Assert.Equal("calculate", tool.GetTagItem(GenAiAttributes.ToolName));
        Assert.StartsWith("call_", (string)tool.GetTagItem(GenAiAttributes.ToolCallId)!);
        Assert.Equal("ok", tool.GetTagItem("chatstack.tool.status"));
        Assert.True(tool.StartTimeUtc > calls[0].StartTimeUtc && tool.StartTimeUtc < calls[1].StartTimeUtc);

        // Three messages (user, tool, assistant), each in one commit with its outbox record; the tool's under its span.
        var commits = trace.Where(s => s.DisplayName == "commit messages").ToList();
        Assert.Equal(3, commits.Count);
        Assert.All(commits, c => Assert.Equal(1, c.GetTagItem("chatstack.outbox.records")));
        Assert.All(commits, c => Assert.Equal(DbAttributes.Firestore, c.GetTagItem(DbAttributes.SystemName)));
        Assert.Single(commits, c => c.ParentSpanId == tool.SpanId);
        // The gRPC call is each commit's child (the user's and the answer's commits carry the session's hold too).
        Assert.All(commits, c => Assert.Contains(trace, s => s.ParentSpanId == c.SpanId && s.Kind == ActivityKind.Client));

        // The shared limits' two commits: the admission with its hold, in the request before the run starts, and the
        // settlement, in the run.
        var limits = trace.Where(s => s.DisplayName == "commit user_limits").OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, limits.Count);
        Assert.True(limits[0].StartTimeUtc < agent.StartTimeUtc);
        Assert.Equal(agent.SpanId, limits[1].ParentSpanId);

        // The relay's publish is a root of its own, linked to the spans that wrote the records.
        Assert.Equal(default, send.ParentSpanId);
        Assert.Equal(ActivityKind.Producer, send.Kind);
        Assert.Equal(MessagingAttributes.SystemPubSub, send.GetTagItem(MessagingAttributes.System));
        Assert.Equal("chat-events", send.GetTagItem(MessagingAttributes.DestinationName));
        Assert.Equal("send", send.GetTagItem(MessagingAttributes.OperationName));
        Assert.True((int)send.GetTagItem(MessagingAttributes.BatchMessageCount)! >= 1);
        // A sampler sees them when the span starts, not only once it has ended.
        var sendCreated = Assert.Single(sampler.Creations, c => c.Name == send.DisplayName && c.TraceId == send.TraceId);
        Assert.Equal(MessagingAttributes.SystemPubSub, sendCreated.Tags[MessagingAttributes.System]);
        Assert.Equal("chat-events", sendCreated.Tags[MessagingAttributes.DestinationName]);
        Assert.Equal("send", sendCreated.Tags[MessagingAttributes.OperationType]);
        Assert.Equal("send", sendCreated.Tags[MessagingAttributes.OperationName]);
        Assert.Equal(send.GetTagItem(MessagingAttributes.BatchMessageCount), sendCreated.Tags[MessagingAttributes.BatchMessageCount]);
        Assert.All(sampler.Creations.Where(c => c.Name == "commit messages" && c.TraceId == agent.TraceId), c => Assert.Equal(DbAttributes.Firestore, c.Tags[DbAttributes.SystemName]));

        // Each is a batch (the message and its outbox record); a single write is a plain commit, no batch size.
        Assert.All(commits, c => Assert.True((int)c.GetTagItem(DbAttributes.BatchSize)! >= 2));
        using (var renamed = await client.Http.PatchAsJsonAsync($"/api/sessions/{client.LastSessionId}", new { title = "Arithmetic" }))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, renamed.StatusCode);
        }

        var rename = await telemetry.WaitForSpanAsync(s => s.Kind == ActivityKind.Server && s.DisplayName.StartsWith("PATCH"), TimeSpan.FromSeconds(10));
        var single = Assert.Single(telemetry.Spans, s => s.TraceId == rename.TraceId && s.DisplayName == "commit sessions");
        Assert.Equal(DbAttributes.Firestore, single.GetTagItem(DbAttributes.SystemName));
        Assert.Null(single.GetTagItem(DbAttributes.BatchSize));
        Assert.DoesNotContain(DbAttributes.BatchSize, Assert.Single(sampler.Creations, c => c.TraceId == rename.TraceId && c.Name == "commit sessions").Tags.Keys);

        // Nothing the user or the model wrote is in the telemetry unless capture is turned on.
        Assert.All(trace, s => Assert.All(ContentAttributes, a => Assert.Null(s.GetTagItem(a))));

        var metrics = telemetry.Metrics(host.Services);
        var tokens = Latest(metrics, GenAiMetrics.TokenUsage);
        Assert.Equal("{token}", tokens.Unit);
        Assert.Equal(MetricType.Histogram, tokens.MetricType);
        var byType = tokens.MetricPoints.ToDictionary(p => Tag(p, GenAiAttributes.TokenType)!, p => p);
        Assert.Equal(new object[] { "input", "output" }, byType.Keys.Order());
        Assert.All(byType.Values, p =>
        {
            Assert.Equal("chat", Tag(p, GenAiAttributes.OperationName));
            Assert.Equal(GenAiAttributes.Providers.Offline, Tag(p, GenAiAttributes.ProviderName));
            Assert.Equal(OfflineModel, Tag(p, GenAiAttributes.RequestModel));
            Assert.Equal(2, p.GetHistogramCount());
        });
        Assert.Equal(calls.Sum(c => (long)(int)c.GetTagItem(GenAiAttributes.UsageInputTokens)!), (long)byType["input"].GetHistogramSum());
        Assert.Equal(GenAiMetrics.TokenUsageBuckets.Select(b => (double)b), Bounds(byType["input"]));
        var duration = Latest(metrics, GenAiMetrics.OperationDuration);
        Assert.Equal("s", duration.Unit);
        Assert.Equal(2, duration.MetricPoints.Sum(p => p.GetHistogramCount()));
        Assert.Equal(GenAiMetrics.DurationBuckets, Bounds(duration.MetricPoints[0]));
        var firstChunk = Latest(metrics, GenAiMetrics.TimeToFirstChunk);
        Assert.Equal("s", firstChunk.Unit);
        Assert.Equal(2, firstChunk.MetricPoints.Sum(p => p.GetHistogramCount()));
        var remaining = Assert.Single(Latest(metrics, ChatMetricNames.BudgetRemaining).MetricPoints);
        Assert.Equal((double)usage.GetProperty("budget_remaining").GetInt32(), remaining.GetHistogramSum());
        Assert.Equal("stop", Tag(remaining, BudgetAttributes.FinishReason));
        var depth = Latest(metrics, ChatMetricNames.OutboxDepth);
        Assert.Equal("{record}", depth.Unit);
        Assert.Equal("s", Latest(metrics, ChatMetricNames.OutboxOldestAge).Unit);
    }

    [Fact]
    public async Task An_openai_compatible_model_is_traced_as_provider_openai_with_its_server_and_the_providers_usage()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings(), configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-openai-user");
        await client.ChatAsync(new { message = "Please multiply 17 by 3.", model = "test-gpt-4o" });

        var agent = await telemetry.WaitForSpanAsync(s => s.DisplayName == "invoke_agent chatstack", TimeSpan.FromSeconds(10));
        Assert.Equal(GenAiAttributes.Providers.OpenAi, agent.GetTagItem(GenAiAttributes.ProviderName));
        var calls = telemetry.Spans.Where(s => s.TraceId == agent.TraceId && s.DisplayName == "chat gpt-4o-mini").OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, calls.Count);
        Assert.All(calls, call =>
        {
            Assert.Equal(GenAiAttributes.Providers.OpenAi, call.GetTagItem(GenAiAttributes.ProviderName));
            Assert.Equal(provider.BaseAddress.Host, call.GetTagItem(GenAiAttributes.ServerAddress));
            Assert.Equal(provider.BaseAddress.Port, call.GetTagItem(GenAiAttributes.ServerPort));
            Assert.Equal(OpenAiCompatibleServer.PromptTokensPerCall, call.GetTagItem(GenAiAttributes.UsageInputTokens));
            Assert.Equal(OpenAiCompatibleServer.CompletionTokensPerCall, call.GetTagItem(GenAiAttributes.UsageOutputTokens));
            Assert.Equal("provider", call.GetTagItem(BudgetAttributes.UsageSource));
            // The HTTP call to the provider is the model call's child.
            Assert.Contains(telemetry.Spans, s => s.ParentSpanId == call.SpanId && s.Kind == ActivityKind.Client);
        });
        // SK reports OpenAI's finish reasons as enum names; the span carries the wire values.
        Assert.Equal(new[] { "tool_calls" }, (string[])calls[0].GetTagItem(GenAiAttributes.ResponseFinishReasons)!);
        Assert.Equal(new[] { "stop" }, (string[])calls[1].GetTagItem(GenAiAttributes.ResponseFinishReasons)!);
    }

    [Fact]
    public async Task Message_content_is_recorded_only_when_capture_is_turned_on()
    {
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { [GenAiContentCapture.Variable] = "true" }, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-capture-user");
        var events = await client.ChatAsync(new { message = ToolMessage });
        var answer = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));

        var agent = await telemetry.WaitForSpanAsync(s => s.DisplayName == "invoke_agent chatstack", TimeSpan.FromSeconds(10));
        Assert.Contains("12.5 + 3", (string)agent.GetTagItem(GenAiAttributes.InputMessages)!);
        Assert.Contains(answer[..20], (string)agent.GetTagItem(GenAiAttributes.OutputMessages)!);
        var calls = telemetry.Spans.Where(s => s.TraceId == agent.TraceId && s.DisplayName.StartsWith("chat ")).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Contains("\"role\":\"user\"", (string)calls[0].GetTagItem(GenAiAttributes.InputMessages)!);
        Assert.Contains("\"type\":\"tool_call\"", (string)calls[0].GetTagItem(GenAiAttributes.OutputMessages)!);
        Assert.Contains("tool_call_response", (string)calls[1].GetTagItem(GenAiAttributes.InputMessages)!);
        var tool = Assert.Single(telemetry.Spans, s => s.TraceId == agent.TraceId && s.DisplayName == "execute_tool calculate");
        Assert.Contains("12.5", (string)tool.GetTagItem(GenAiAttributes.ToolCallArguments)!);
        Assert.Equal("62", tool.GetTagItem(GenAiAttributes.ToolCallResult));
    }

    [Fact]
    public async Task A_long_message_is_captured_shortened_as_valid_json_in_the_agent_and_model_call_spans()
    {
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { [GenAiContentCapture.Variable] = "true", ["Chat:MaxMessageChars"] = "40000" }, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-capture-long");
        var message = "Please read all of this. " + string.Concat(Enumerable.Range(0, 3000).Select(i => $"line {i:D5}. "));
        var events = await client.ChatAsync(new { message, budget_max = 16000 });
        Assert.Equal("done", events.Last(e => !e.IsComment).Event);

        var agent = await telemetry.WaitForSpanAsync(s => s.DisplayName == "invoke_agent chatstack", TimeSpan.FromSeconds(10));
        var call = Assert.Single(telemetry.Spans, s => s.TraceId == agent.TraceId && s.DisplayName.StartsWith("chat ", StringComparison.Ordinal));
        var sent = System.Text.Json.JsonDocument.Parse((string)agent.GetTagItem(GenAiAttributes.InputMessages)!).RootElement[0].GetProperty("parts")[0].GetProperty("content").GetString()!;
        var context = System.Text.Json.JsonDocument.Parse((string)call.GetTagItem(GenAiAttributes.InputMessages)!).RootElement;
        var user = context.EnumerateArray().Single(m => m.GetProperty("role").GetString() == "user").GetProperty("parts")[0].GetProperty("content").GetString();
        var expected = $"{message[..GenAiContent.MaxCapturedChars]}… [{message.Length - GenAiContent.MaxCapturedChars} more characters not captured]";
        Assert.Equal(expected, sent);
        Assert.Equal(expected, user);
    }

    [Fact]
    public async Task Budget_exhaustions_and_rate_limit_rejections_are_counted()
    {
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { ["Limits:RequestsPerWindow"] = "1" }, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-limits-user");
        var events = await client.ChatAsync(new { message = "Tell me a long story about budgets.", budget_max = 100 });
        Assert.Equal("budget_exhausted", events.Single(e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());
        using (var refused = await client.PostChatAsync(new { message = "again" }))
        {
            Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        var agent = await telemetry.WaitForSpanAsync(s => s.DisplayName == "invoke_agent chatstack", TimeSpan.FromSeconds(10));
        Assert.Equal("budget_exhausted", agent.GetTagItem(BudgetAttributes.FinishReason));
        Assert.Single(agent.Events, e => e.Name == BudgetAttributes.ExhaustedEvent);
        Assert.Equal(0, agent.GetTagItem(BudgetAttributes.Remaining));
        // The call cut short never got the provider's usage: the span carries ChatStack's exact count.
        var last = telemetry.Spans.Where(s => s.TraceId == agent.TraceId && s.DisplayName.StartsWith("chat ")).MaxBy(s => s.StartTimeUtc)!;
        Assert.Equal("counted", last.GetTagItem(BudgetAttributes.UsageSource));

        var metrics = telemetry.Metrics(host.Services);
        var exhaustions = Assert.Single(Latest(metrics, ChatMetricNames.BudgetExhaustions).MetricPoints);
        Assert.Equal(1, exhaustions.GetSumLong());
        var rejection = Assert.Single(Latest(metrics, ChatMetricNames.RateLimitRejections).MetricPoints);
        Assert.Equal(1, rejection.GetSumLong());
        Assert.Equal("rate-limited", Tag(rejection, ChatMetricNames.LimitReason));
        Assert.Equal("{request}", Latest(metrics, ChatMetricNames.RateLimitRejections).Unit);
    }

    [Fact]
    public async Task While_pubsub_is_down_the_outbox_gauges_report_what_waits_and_for_how_long()
    {
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:9" }, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "otel-outbox-user");
        await client.ChatAsync(new { message = "Hello there" });
        await client.ChatAsync(new { session_id = client.LastSessionId, message = "And again" });

        // Four events wait (two turns, no tools); the relay reports them on its next look, at most a second later.
        var outbox = host.Services.GetRequiredService<ChatStack.ChatApi.DualWrite.IOutboxStore>();
        Assert.Equal(4, await outbox.CountAsync(CancellationToken.None));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        double depth;
        do
        {
            await Task.Delay(250);
            depth = Gauge(telemetry.Metrics(host.Services), ChatMetricNames.OutboxDepth);
        }
        while (depth < 4 && DateTime.UtcNow < deadline);

        Assert.Equal(4, depth);
        Assert.True(Gauge(telemetry.Metrics(host.Services), ChatMetricNames.OutboxOldestAge) > 0);
        Assert.Contains(telemetry.Spans, s => s.DisplayName == "send chat-events" && s.Status == ActivityStatusCode.Error);
    }

    /// <summary>
    /// More than a batch waiting is counted beside delivery (capped, on the emulator too): the depth reads the whole
    /// backlog, not one batch.
    /// </summary>
    [Fact]
    public async Task While_pubsub_is_down_a_backlog_bigger_than_a_batch_is_counted_for_the_depth_gauge()
    {
        // Four records waiting before the API starts, read three at a time: only a count sees four.
        var project = $"otel-{Guid.NewGuid():N}"[..20];
        var database = $"projects/{project}/databases/(default)";
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var commit = new CommitRequest { Database = database };
        commit.Writes.AddRange(Enumerable.Range(0, 4).Select(i => FirestoreOutbox.ToWrite(database,
            new OutboxRecord($"ev-{i}", [1], new Dictionary<string, string>(), DateTimeOffset.UtcNow.AddSeconds(i - 10)))));
        await new Firestore.FirestoreClient(channel).CommitAsync(commit);

        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = project, ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:9" }, configure: builder =>
            {
                telemetry.AddTo(builder);
                builder.Services.Replace(ServiceDescriptor.Singleton(DualWriteOptions.From(builder.Configuration) with { BatchSize = 3 }));
            });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        double depth;
        do
        {
            await Task.Delay(250);
            depth = Gauge(telemetry.Metrics(host.Services), ChatMetricNames.OutboxDepth);
        }
        while (depth != 4 && DateTime.UtcNow < deadline);

        Assert.Equal(4, depth);
    }

    private static double Gauge(IReadOnlyList<MetricSnapshot> metrics, string name)
    {
        var point = metrics.LastOrDefault(m => m.Name == name)?.MetricPoints.SingleOrDefault();
        return point is not { } p ? 0 : name == ChatMetricNames.OutboxDepth ? p.GetGaugeLastValueLong() : p.GetGaugeLastValueDouble();
    }

    private static MetricSnapshot Latest(IReadOnlyList<MetricSnapshot> metrics, string name) =>
        metrics.LastOrDefault(m => m.Name == name) ?? throw new Xunit.Sdk.XunitException($"no metric {name}; have {string.Join(", ", metrics.Select(m => m.Name).Distinct())}");

    private static object? Tag(MetricPoint point, string key)
    {
        foreach (var tag in point.Tags)
        {
            if (tag.Key == key)
            {
                return tag.Value;
            }
        }

        return null;
    }

    private static List<double> Bounds(MetricPoint point)
    {
        var bounds = new List<double>();
        foreach (var bucket in point.GetHistogramBuckets())
        {
            if (!double.IsPositiveInfinity(bucket.ExplicitBound))
            {
                bounds.Add(bucket.ExplicitBound);
            }
        }

        return bounds;
    }
}
