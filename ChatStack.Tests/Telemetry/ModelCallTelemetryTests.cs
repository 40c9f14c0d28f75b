using System.Diagnostics;
using ChatStack.Contracts.Telemetry;
using ChatStack.Tests.Support;
using OpenTelemetry.Metrics;

namespace ChatStack.Tests.Telemetry;

/// <summary>
/// The <c>chat {model}</c> spans and GenAI client metrics of calls to an OpenAI-compatible test server, from the chat
/// API in process on its in-memory store.
/// </summary>
public sealed class ModelCallTelemetryTests
{
    private const string RequestModel = "gpt-4o-mini";
    private const string Snapshot = "gpt-4o-mini-2024-07-18";

    [Fact]
    public async Task The_response_model_of_spans_and_token_usage_is_the_one_the_provider_says_answered_streamed_or_not()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.ResponseModel = Snapshot;
        var telemetry = new TelemetryCapture();
        var settings = Settings(provider.ModelSettings());
        // Two long messages overflow a small window: the second turn summarizes the first (a call that does not stream).
        settings["Chat:Models:test-gpt-4o:ContextWindow"] = "1000";
        settings["Chat:KeepRecentMessages"] = "1";
        await using var host = await ChatApiHost.StartAsync("127.0.0.1:9", settings, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, "response-model-user");
        var filler = string.Concat(Enumerable.Repeat(" word", 500));
        Assert.Equal("done", (await client.ChatAsync(new { message = "First:" + filler, model = "test-gpt-4o" }))[^1].Event);
        var second = await client.ChatAsync(new { session_id = client.LastSessionId, message = "Second:" + filler, model = "test-gpt-4o" });
        Assert.Equal("done", second[^1].Event);
        Assert.Contains(second, e => e.Event == "summarized");

        // The first turn's answer, the second's summary and answer.
        var calls = await WaitForCallsAsync(telemetry, 3);
        Assert.Equal(3, calls.Count);
        Assert.All(calls, call =>
        {
            Assert.Equal(RequestModel, call.GetTagItem(GenAiAttributes.RequestModel));
            Assert.Equal(Snapshot, call.GetTagItem(GenAiAttributes.ResponseModel));
        });
        var usage = Points(telemetry.Metrics(host.Services), GenAiMetrics.TokenUsage);
        Assert.NotEmpty(usage);
        Assert.All(usage, point =>
        {
            Assert.Equal(RequestModel, Tag(point, GenAiAttributes.RequestModel));
            Assert.Equal(Snapshot, Tag(point, GenAiAttributes.ResponseModel));
        });
    }

    [Theory]
    [InlineData(401)]
    [InlineData(503)]
    [InlineData(0)] // nothing listens at the endpoint
    public async Task A_model_call_that_failed_before_its_first_chunk_records_and_charges_no_tokens_but_its_duration_with_the_error(int status)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        var settings = Settings(provider.ModelSettings());
        if (status == 0)
        {
            settings["Chat:Models:test-gpt-4o:Endpoint"] = "http://127.0.0.1:9/v1/";
        }
        else
        {
            provider.Failure = (status, "server_error", "refused", "No.");
        }

        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync("127.0.0.1:9", settings, configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, $"failed-call-{status}");
        var events = await client.ChatAsync(new { message = "hello", model = "test-gpt-4o" });
        Assert.Equal("model_error", events[^1].Payload.GetProperty("code").GetString());
        // Nothing was spent, so nothing is charged: the finalize count is zero.
        var finalize = events.Last(e => e.Event == "token_count").Payload;
        Assert.Equal(("finalize", 0), (finalize.GetProperty("phase").GetString(), finalize.GetProperty("total").GetInt32()));

        var call = Assert.Single(await WaitForCallsAsync(telemetry, 1));
        Assert.Equal(ActivityStatusCode.Error, call.Status);
        Assert.Null(call.GetTagItem(GenAiAttributes.UsageInputTokens));
        Assert.Null(call.GetTagItem(GenAiAttributes.UsageOutputTokens));
        var metrics = telemetry.Metrics(host.Services);
        Assert.Empty(Points(metrics, GenAiMetrics.TokenUsage));
        var duration = Assert.Single(Points(metrics, GenAiMetrics.OperationDuration));
        Assert.Equal(call.GetTagItem(GenAiAttributes.ErrorType), Tag(duration, GenAiAttributes.ErrorType));
        Assert.NotEqual("cancelled", Tag(duration, GenAiAttributes.ErrorType));
    }

    private static Dictionary<string, string?> Settings(Dictionary<string, string?> model) => new(model)
    {
        ["ENABLE_FIRESTORE_WRITE"] = "false",
        ["ENABLE_PUBSUB"] = "false",
    };

    private static async Task<List<Activity>> WaitForCallsAsync(TelemetryCapture telemetry, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var calls = telemetry.Spans.Where(s => s.DisplayName == $"chat {RequestModel}").ToList();
            if (calls.Count >= count)
            {
                return calls;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{calls.Count} model call spans, expected {count}");
            await Task.Delay(100);
        }
    }

    /// <summary>The points of the latest snapshot of a metric; none when nothing was ever recorded to it.</summary>
    private static List<MetricPoint> Points(IReadOnlyList<MetricSnapshot> metrics, string name)
    {
        var points = new List<MetricPoint>();
        if (metrics.LastOrDefault(m => m.Name == name) is { } metric)
        {
            foreach (var point in metric.MetricPoints)
            {
                points.Add(point);
            }
        }

        return points;
    }

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
}
