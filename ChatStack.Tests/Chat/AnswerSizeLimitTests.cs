using System.Text;
using System.Text.Json;
using ChatStack.Contracts.Events;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using ChatStack.Tokenization;
using Google.Cloud.Firestore.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.Chat;

/// <summary>
/// An answer stops before its Firestore document (or the outbox record that carries its text) would pass Firestore's
/// 1 MiB, as it stops when the budget runs out, and a tool message keeps only the start of what the model made long:
/// through the real API, an OpenAI-compatible server playing a model that loops, and the Firestore emulator.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class AnswerSizeLimitTests(StackFixture stack, ITestOutputHelper output)
{
    private static readonly ITokenCounter Counter = TokenCounterFactory.Default.ForEncoding("o200k_base");

    [Theory]
    [InlineData(false, "x😀", 2_002, 400, "x")] // 5 UTF-8 bytes a chunk: 401 x fit, the emoji after the last does not
    [InlineData(true, "é🌊", 1_000, 55, "é")] // captured, its event holds it as JSON: 6 + 12 bytes a chunk
    public async Task A_looping_answer_stops_at_the_configured_size_and_what_was_streamed_is_stored_counted_and_published(
        bool capture, string chunk, int maxBytes, int wholeChunks, string tail)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        // Far more than the sockets between the two can buffer (20,000 chunks, 3 MB of SSE, sometimes all fit), so the
        // provider is still writing when the API drops the call, and sees it.
        provider.RepeatedAnswer = (chunk, 200_000);
        var settings = provider.ModelSettings();
        settings["Chat:MaxAnswerBytes"] = $"{maxBytes}";
        settings[ChatStack.Contracts.Telemetry.GenAiContentCapture.Variable] = capture ? "true" : "false";
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var client = await ChatApiClient.SignInAsync(host.Address, $"looping-{capture}");

        var events = await client.ChatAsync(new { message = "Draw me a line.", model = "test-gpt-4o" });

        var expected = string.Concat(Enumerable.Repeat(chunk, wholeChunks)) + tail;
        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("size_limit", done.GetProperty("finish_reason").GetString());
        var streamed = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));
        Assert.Equal(expected, streamed);
        Assert.Equal(expected, Prefix(string.Concat(Enumerable.Repeat(chunk, wholeChunks + 1)), maxBytes, StoredBytes(capture))); // as much as fits

        // The model call was cancelled: the provider's stream was dropped long before its end.
        Assert.InRange(await provider.RepeatedAnswerAbandoned.Task.WaitAsync(TimeSpan.FromSeconds(30)), wholeChunks, 199_999);

        // Stored as streamed, and counted as stored: the call was cut, so no provider usage replaces the count.
        var answer = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().Last();
        Assert.Equal("assistant", answer.GetProperty("role").GetString());
        Assert.Equal(expected, answer.GetProperty("content").GetString());
        Assert.Equal("size_limit", answer.GetProperty("finish_reason").GetString());
        var tokens = Counter.CountTokens(expected);
        Assert.Equal(tokens, answer.GetProperty("tokens").GetInt32());
        Assert.Equal(tokens, done.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.False(done.TryGetProperty("reconciliation", out var reconciliation) && reconciliation.ValueKind != JsonValueKind.Null);
        var session = await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}");
        Assert.Equal(done.GetProperty("usage").GetProperty("total_tokens").GetInt32(), session.GetProperty("total_tokens").GetInt32());

        // Its chat event waits in the outbox (Pub/Sub is unreachable here), with the text when it is captured.
        var published = await AssistantEventAsync(host, client.LastSessionId!);
        Assert.Equal("size_limit", published.FinishReason);
        Assert.Equal(tokens, published.CompletionTokens);
        Assert.Equal(capture ? expected : null, published.Content);
        output.WriteLine($"{Encoding.UTF8.GetByteCount(expected)} UTF-8 bytes, {JsonSerializer.Serialize(expected).Length - 2} as JSON, {tokens} tokens");
    }

    /// <summary>
    /// With the default limit, an answer of long tokens the default budget ceiling affords (o200k: 64 '=' a token, 32
    /// '+', each '+' 6 bytes in a captured event's JSON) would have made a document Firestore refuses, and the whole
    /// answer was lost with <c>store_error</c>. A line break ends each run, as a model drawing lines would write it
    /// (one unbroken run is LongRunTests' subject).
    /// </summary>
    [Theory]
    [InlineData(false, '=', 4_096, 320, 32_000, null)] // 1.3 MB of text in the message
    [InlineData(true, '+', 1_024, 200, 8_000, null)] // 205 KB of text, 1.2 MB as JSON in the outbox record
    // The largest limit start-up accepts: Firestore's mebibyte less 16 KiB is room enough for the fields beside the
    // answer, in the message document and in its outbox record (Firestore refuses either over 1 MiB).
    [InlineData(false, '=', 4_096, 320, 32_000, ChatStack.ChatApi.Agent.ChatOptions.MaxStorableAnswerBytes)]
    [InlineData(true, '+', 1_024, 200, 8_000, ChatStack.ChatApi.Agent.ChatOptions.MaxStorableAnswerBytes)]
    public async Task An_answer_that_would_pass_a_mebibyte_stops_at_its_limit_and_is_kept_up_to_the_largest_limit_allowed(bool capture, char repeated, int chunkChars, int chunks, int budget,
        int? maxAnswerBytes)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        var line = new string(repeated, chunkChars - 1) + "\n";
        provider.RepeatedAnswer = (line, chunks);
        var settings = provider.ModelSettings();
        settings[ChatStack.Contracts.Telemetry.GenAiContentCapture.Variable] = capture ? "true" : "false";
        if (maxAnswerBytes is not null)
        {
            settings["Chat:MaxAnswerBytes"] = $"{maxAnswerBytes}";
        }

        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var client = await ChatApiClient.SignInAsync(host.Address, $"long-tokens-{capture}");

        var events = await client.ChatAsync(new { message = "Draw me a long line.", model = "test-gpt-4o", budget_max = budget });

        var error = events.FirstOrDefault(e => e.Event == "error")?.Payload.GetProperty("code").GetString();
        Assert.Null(error);
        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("size_limit", done.GetProperty("finish_reason").GetString());
        // The longest prefix within the default limit (Chat:MaxAnswerBytes, 1,000,000): a '+' is 6 bytes as JSON ("\u002B").
        var expected = Prefix(string.Concat(Enumerable.Repeat(line, chunks)), maxAnswerBytes ?? 1_000_000, StoredBytes(capture));
        Assert.Equal(expected, string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString())));
        var answer = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().Last();
        Assert.Equal(expected, answer.GetProperty("content").GetString());
        var tokens = Counter.CountTokens(expected);
        Assert.Equal(tokens, done.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(tokens, answer.GetProperty("tokens").GetInt32());
        var published = await AssistantEventAsync(host, client.LastSessionId!);
        Assert.Equal(capture ? expected : null, published.Content);
        output.WriteLine($"{expected.Length} characters, {tokens} tokens");
    }

    /// <summary>
    /// A tool's error quotes what the model wrote: a calculator call with a 540 KB expression made a tool message (its
    /// arguments and a result quoting them) over 1 MiB, and the turn ended with <c>store_error</c>.
    /// </summary>
    [Fact]
    public async Task A_tool_message_keeps_the_start_of_a_long_result_and_of_its_arguments_and_the_turn_goes_on()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        var expression = new string('=', 540_000);
        provider.CalculateExpression = expression;
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings());
        var client = await ChatApiClient.SignInAsync(host.Address, "long-tool-call");

        var events = await client.ChatAsync(new { message = "Please multiply this line.", model = "test-gpt-4o", budget_max = 32_000 });

        Assert.Null(events.FirstOrDefault(e => e.Event == "error")?.Data);
        Assert.Equal("stop", Assert.Single(events, e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());
        // The model was sent the whole result; the message keeps its start, and counts what the model was sent.
        var result = $"error: Expected a number at 0 in '{expression}'.";
        Assert.Contains(provider.Requests.Last()["messages"]!.AsArray(), m => m!["role"]!.GetValue<string>() == "tool" && m["content"]!.ToString() == result);
        var tool = Assert.Single((await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray(),
            m => m.GetProperty("role").GetString() == "tool");
        AssertStartOf(result, tool.GetProperty("content").GetString()!);
        AssertStartOf(JsonSerializer.Serialize(new Dictionary<string, string> { ["expression"] = expression }), tool.GetProperty("tool_arguments").GetString()!);
        Assert.Equal(Counter.CountTokens(result), tool.GetProperty("tokens").GetInt32());

        static void AssertStartOf(string whole, string kept)
        {
            Assert.EndsWith("…", kept);
            Assert.StartsWith(kept[..^1], whole, StringComparison.Ordinal);
            Assert.InRange(Encoding.UTF8.GetByteCount(kept), 64 * 1024 - 3, 64 * 1024);
        }
    }

    /// <summary>
    /// A provider that ignores the summary's max_tokens (512) and returns 2 MB: the session keeps the summary's first
    /// 64 KiB, where Firestore would have refused the whole, and the turn ends as its budget ran out.
    /// </summary>
    [Fact]
    public async Task A_summary_the_provider_made_too_long_is_kept_to_its_first_64_KiB_and_what_it_spent_ends_the_turn_as_a_budget()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.SummaryText = string.Concat(Enumerable.Repeat("The user talked at length about filler words. ", 45_000));
        var settings = provider.ModelSettings();
        // Two long messages overflow a small window: the second turn summarizes the first.
        settings["Chat:Models:test-gpt-4o:ContextWindow"] = "1000";
        settings["Chat:KeepRecentMessages"] = "1";
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var client = await ChatApiClient.SignInAsync(host.Address, "long-summary");
        var filler = string.Concat(Enumerable.Repeat(" word", 500));
        Assert.Equal("done", (await client.ChatAsync(new { message = "First:" + filler, model = "test-gpt-4o" }))[^1].Event);

        var second = await client.ChatAsync(new { session_id = client.LastSessionId, message = "Second:" + filler, model = "test-gpt-4o", budget_max = 32_000 });

        Assert.Null(second.FirstOrDefault(e => e.Event == "error")?.Payload.GetProperty("code").GetString());
        Assert.Contains(second, e => e.Event == "summarized");
        // Its ~450,000 tokens spent the budget: the turn ends there, as a budget does, not as a context too large.
        Assert.Equal("done", second[^1].Event);
        Assert.Equal("budget_exhausted", second[^1].Payload.GetProperty("finish_reason").GetString());
        var summary = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("summary").GetString()!;
        Assert.InRange(Encoding.UTF8.GetByteCount(summary), 60_000, 64 * 1024);
        Assert.EndsWith("…", summary);
        Assert.StartsWith(summary[..^1], provider.SummaryText);
        output.WriteLine($"summary kept: {summary.Length} of {provider.SummaryText.Length} characters; the turn ended {second[^1].Payload.GetProperty("finish_reason").GetString()}");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("1048576")] // Firestore's whole document: no room for the message's other fields
    public async Task A_max_answer_size_the_store_cannot_keep_stops_start_up_naming_the_setting(string value)
    {
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["Chat:MaxAnswerBytes"] = value,
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_PUBSUB"] = "false",
        }));
        Assert.Contains($"Chat:MaxAnswerBytes is {value}; it must lie in 1..1032192", e.Message);
    }

    /// <summary>The longest prefix of whole scalar values within <paramref name="maxBytes"/>.</summary>
    private static string Prefix(string text, int maxBytes, Func<string, int> bytes)
    {
        var (length, total) = (0, 0);
        while (length < text.Length)
        {
            var scalar = text.Substring(length, char.IsSurrogatePair(text, length) ? 2 : 1);
            if (total + bytes(scalar) > maxBytes)
            {
                break;
            }

            total += bytes(scalar);
            length += scalar.Length;
        }

        return text[..length];
    }

    /// <summary>Firestore's size of text: its UTF-8 bytes, or with capture on its size in the chat event's JSON, the larger.</summary>
    private static Func<string, int> StoredBytes(bool capture) => capture
        ? scalar => JsonSerializer.Serialize(scalar).Length - 2 // the default encoder: "\u00E9", "\u002B", "\n"
        : Encoding.UTF8.GetByteCount;

    /// <summary>The assistant message's chat event, read from the host's Firestore outbox.</summary>
    private async Task<ChatEvent> AssistantEventAsync(ChatApiHost host, string sessionId)
    {
        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var outbox = await new Firestore.FirestoreClient(channel).ListDocumentsAsync(new ListDocumentsRequest
        {
            Parent = $"projects/{host.Services.GetRequiredService<GoogleCloudOptions>().ProjectId}/databases/(default)/documents",
            CollectionId = "outbox",
            PageSize = 100,
        });
        var events = outbox.Documents.Select(d => ChatEventMessages.TryParse(d.Fields["data"].BytesValue.Span,
            d.Fields["attributes"].MapValue.Fields.ToDictionary(f => f.Key, f => f.Value.StringValue), out var parsed, out var reason)
            ? parsed as ChatEvent
            : throw new InvalidOperationException(reason));
        return Assert.Single(events.OfType<ChatEvent>(), e => e.SessionId == sessionId && e.EventType == "assistant_message");
    }
}
