using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// The chat API on Kestrel in process, configured per test: against the stack's Firestore emulator, an
/// unreachable Firestore, tight limits, or a local OpenAI-compatible server.
/// </summary>
[Collection(StackCollection.Name)]
public class ChatApiHostTests(StackFixture stack, ITestOutputHelper output)
{
    /// <summary>Outside Development the API needs a content hash key as much as a signing key (ContentHashTests).</summary>
    private const string ProductionContentHashKey = "a-content-hash-key-of-sufficient-length-0123456789";

    [Fact]
    public async Task The_openai_compatible_path_streams_calls_tools_and_reconciles_with_the_final_usage_chunk()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings());
        var client = await ChatApiClient.SignInAsync(host.Address, "openai-user");
        // Listed for clients to choose, with the encoding its provider model id implies, and never with its key or endpoint.
        using (var listed = await client.Http.GetAsync("/api/models"))
        {
            var listing = await listed.Content.ReadAsStringAsync();
            var model = JsonDocument.Parse(listing).RootElement.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "test-gpt-4o");
            Assert.Equal("openai", model.GetProperty("provider").GetString());
            Assert.Equal("o200k_base", model.GetProperty("encoding").GetString());
            Assert.DoesNotContain("test-key", listing);
            Assert.DoesNotContain(provider.BaseAddress.Authority, listing);
        }

        var events = await client.ChatAsync(new { message = "Please multiply 17 by 3.", model = "test-gpt-4o" });
        output.WriteLine(string.Join(' ', events.Select(e => e.Event)));

        // Two model calls: the first asks for the calculator, the second answers from its result.
        Assert.Equal(2, provider.Requests.Count);
        var first = provider.Requests.First();
        Assert.True(first["stream"]!.GetValue<bool>());
        Assert.True(first["stream_options"]?["include_usage"]?.GetValue<bool>(), "streaming usage is requested");
        Assert.Equal("gpt-4o-mini", first["model"]!.GetValue<string>());
        Assert.Contains(first["tools"]!.AsArray(), t => t!["function"]!["name"]!.GetValue<string>() == "tools-calculate");
        var second = provider.Requests.Last();
        Assert.Contains(second["messages"]!.AsArray(), m => m!["role"]!.GetValue<string>() == "tool" && m["content"]!.ToString() == "51");

        var toolEnd = Assert.Single(events, e => e.Event == "tool_end").Payload;
        Assert.Equal("calculate", toolEnd.GetProperty("name").GetString());
        Assert.Equal("51", toolEnd.GetProperty("result_summary").GetString());
        var text = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));
        Assert.Equal(string.Concat(OpenAiCompatibleServer.AnswerChunks), text);

        // The provider's usage (two calls) replaces the count at finalize; the difference is reported.
        var done = events.Single(e => e.Event == "done").Payload;
        var usage = done.GetProperty("usage");
        Assert.Equal(2 * OpenAiCompatibleServer.PromptTokensPerCall, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2 * OpenAiCompatibleServer.CompletionTokensPerCall, usage.GetProperty("completion_tokens").GetInt32());
        var reconciliation = done.GetProperty("reconciliation");
        // The test server reports fixed usage per call, so the count and the provider differ here; the difference is reported.
        var counted = reconciliation.GetProperty("counted_total").GetInt32();
        var lastLive = events.Last(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() != "finalize").Payload.GetProperty("total").GetInt32();
        Assert.True(counted >= lastLive);
        Assert.Equal(reconciliation.GetProperty("provider_total").GetInt32() - counted, reconciliation.GetProperty("delta").GetInt32());
        output.WriteLine($"counted {counted}, provider {reconciliation.GetProperty("provider_total").GetInt32()}");
        Assert.Equal(usage.GetProperty("total_tokens").GetInt32(), events.Last(e => e.Event == "token_count").Payload.GetProperty("total").GetInt32());

        // The difference is recorded with the answer, and the session totals are the provider's.
        var answer = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().Last();
        Assert.Equal(reconciliation.GetProperty("delta").GetInt32(), answer.GetProperty("usage_reconciliation_delta").GetInt32());
        Assert.Equal(usage.GetProperty("total_tokens").GetInt32(), (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}")).GetProperty("total_tokens").GetInt32());
    }

    /// <summary>
    /// An answer stopped by its budget or its size cuts the provider's connection at once: disposing the stream alone
    /// left HttpClient draining the response (up to 1 MB or 2 s) while the provider went on generating, and billing.
    /// </summary>
    [Theory]
    [InlineData("budget")]
    [InlineData("size")]
    public async Task A_stopped_answer_cuts_the_providers_connection_at_once_not_after_a_drain(string stop)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.RepeatedAnswer = (" word", 5_000);
        provider.RepeatedAnswerDelayMs = 5; // a model streaming ~200 tokens a second
        var settings = provider.ModelSettings();
        if (stop == "size")
        {
            settings["Chat:MaxAnswerBytes"] = "600";
        }

        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, settings);
        var client = await ChatApiClient.SignInAsync(host.Address, $"stopped-{stop}");

        var events = await client.ChatAsync(stop == "budget"
            ? new { message = "Talk.", model = "test-gpt-4o", budget_max = 200 }
            : new { message = "Talk.", model = "test-gpt-4o", budget_max = 8_000 });

        Assert.Equal(stop == "budget" ? "budget_exhausted" : "size_limit", events[^1].Payload.GetProperty("finish_reason").GetString());
        var chunks = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString())).Length / " word".Length;
        var abandoned = await provider.RepeatedAnswerAbandoned.Task.WaitAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"stopped after {chunks} chunks; the provider saw its reader go after writing {abandoned}");
        // A drain read on for up to 2 s: ~250 more chunks at this pace (old code: 405 after 159, 367 after 120). Cut,
        // the provider notices within a few (the index of the last chunk written: one less than the count).
        Assert.InRange(abandoned, chunks - 1, chunks + 60);
    }

    /// <summary>
    /// Models name tools that do not exist and write arguments that are not JSON: the call becomes an error result the
    /// model reads (and can correct), tracked like any tool call, and the turn goes on rather than ending in model_error.
    /// </summary>
    [Theory]
    [InlineData("tools-weather", "{\"city\":\"Paris\"}", "weather", "error: there is no tool named 'tools-weather'")]
    [InlineData("weather", "{}", "weather", "error: there is no tool named 'weather'")]
    [InlineData("tools-calculate", "{\"expression\":", "calculate", "error: the arguments are not valid JSON")]
    public async Task A_call_to_a_tool_that_does_not_exist_or_with_arguments_that_are_not_json_is_an_error_result_and_the_turn_goes_on(
        string called, string arguments, string name, string error)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.ToolCall = (called, arguments);
        var telemetry = new TelemetryCapture();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings(), configure: telemetry.AddTo);
        var client = await ChatApiClient.SignInAsync(host.Address, $"bad-tool-call-{name}-{arguments.Length}");

        var events = await client.ChatAsync(new { message = "Please multiply the weather.", model = "test-gpt-4o" });
        output.WriteLine(string.Join(' ', events.Select(e => e.Event)));

        Assert.DoesNotContain(events, e => e.Event == "error");
        Assert.Equal("stop", events.Single(e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());
        Assert.Equal(name, Assert.Single(events, e => e.Event == "tool_start").Payload.GetProperty("name").GetString());
        var toolEnd = Assert.Single(events, e => e.Event == "tool_end").Payload;
        Assert.Equal(name, toolEnd.GetProperty("name").GetString());
        Assert.Equal("error", toolEnd.GetProperty("status").GetString());
        Assert.StartsWith(error, toolEnd.GetProperty("result_summary").GetString());
        // The model was told, with the tools it has, and answered.
        Assert.Equal(2, provider.Requests.Count);
        var told = Assert.Single(provider.Requests.Last()["messages"]!.AsArray(), m => m!["role"]!.GetValue<string>() == "tool")!;
        Assert.Equal("call_scripted_1", told["tool_call_id"]!.GetValue<string>());
        Assert.StartsWith(error, told["content"]!.ToString());
        Assert.Equal(string.Concat(OpenAiCompatibleServer.AnswerChunks), string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString())));
        // Kept like any tool call: a tool message with its error status.
        var tool = Assert.Single((await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray(), m => m.GetProperty("role").GetString() == "tool");
        Assert.Equal("error", tool.GetProperty("tool_status").GetString());
        // And traced like one: an execute_tool span, failed, with the call's id.
        var span = await telemetry.WaitForSpanAsync(a => a.DisplayName == $"execute_tool {name}", TimeSpan.FromSeconds(10));
        Assert.Equal(System.Diagnostics.ActivityStatusCode.Error, span.Status);
        Assert.Equal(arguments.EndsWith(':') ? "InvalidToolArguments" : "ToolNotFound", span.GetTagItem("error.type"));
        Assert.Equal("call_scripted_1", span.GetTagItem("gen_ai.tool.call.id"));
    }

    [Fact]
    public async Task A_tool_round_trip_charges_the_resent_context_and_stops_before_a_call_the_budget_cannot_take()
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings());
        var client = await ChatApiClient.SignInAsync(host.Address, "resend-user");
        // Long enough that the smallest budget this needs is above the API's minimum budget_max.
        const string Message = "Please multiply 17 by 3. I am checking a spreadsheet of quarterly figures and want to be sure the arithmetic in the third column is right before I send it to the team.";

        // The second call is sent the first call's context again, plus the tool call and its result.
        var events = await client.ChatAsync(new { message = Message, model = "test-gpt-4o" });
        var counts = events.Where(e => e.Event == "token_count").Select(e => e.Payload).ToList();
        int At(string phase, int index, string field) => counts.Where(c => c.GetProperty("phase").GetString() == phase).ElementAt(index).GetProperty(field).GetInt32();
        var context = At("retrieval", 0, "prompt");
        var call = At("tool", 0, "completion");
        var afterTool = At("tool", 1, "prompt");
        var result = afterTool - (2 * context + call);
        output.WriteLine($"context {context}, tool call {call}, prompt after the tool {afterTool}");
        Assert.Equal(2 * context + call, At("tool", 0, "prompt"));
        Assert.InRange(result, 1, 5); // "51": the result is counted once more, not the context a third time
        Assert.Equal(2, provider.Requests.Count);

        // A budget the re-sent context does not fit: the first call and the tool run, the second call is never sent.
        provider.Requests.Clear();
        var budgetMax = context + call + result + 1; // enough if the context counted only once
        var stopped = await client.ChatAsync(new { message = Message, model = "test-gpt-4o", budget_max = budgetMax });
        Assert.Single(provider.Requests);
        Assert.DoesNotContain(stopped, e => e.Event == "message_delta");
        var done = Assert.Single(stopped, e => e.Event == "done").Payload;
        Assert.Equal("budget_exhausted", done.GetProperty("finish_reason").GetString());
        var lastTool = stopped.Last(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "tool").Payload;
        Assert.Equal(2 * context + call + result, lastTool.GetProperty("prompt").GetInt32());
        Assert.Equal(0, lastTool.GetProperty("remaining").GetInt32());
        // What was billed is the one call made: its reported usage is the run's.
        Assert.Equal(OpenAiCompatibleServer.PromptTokensPerCall, done.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(OpenAiCompatibleServer.CompletionTokensPerCall, done.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task A_failing_provider_ends_the_stream_with_an_error_event_after_finalize()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Chat:Models:dead-gpt-4o:Endpoint"] = "http://127.0.0.1:9/v1/",
            ["Chat:Models:dead-gpt-4o:ApiKey"] = "k",
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "unlucky-user");
        var events = await client.ChatAsync(new { message = "hello", model = "dead-gpt-4o" });
        Assert.Equal(["token_count", "token_count", "token_count", "error"], events.Select(e => e.Event));
        Assert.Equal("finalize", events[^2].Payload.GetProperty("phase").GetString());
        Assert.Equal("model_error", events[^1].Payload.GetProperty("code").GetString());
        Assert.Equal("The model provider could not be reached; try again shortly.", events[^1].Payload.GetProperty("message").GetString());
        var messages = (await client.GetJsonAsync($"/api/sessions/{client.LastSessionId}/messages")).EnumerateArray().ToList();
        Assert.Equal(["user"], messages.Select(m => m.GetProperty("role").GetString()));
    }

    [Theory]
    [InlineData(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-test****abcd.", "The model provider refused this server's credentials (HTTP 401)")]
    [InlineData(404, "invalid_request_error", "model_not_found", "The model `gpt-9` does not exist or you do not have access to it.", "does not know the configured model or endpoint (HTTP 404)")]
    [InlineData(429, "rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini in organization org-secret.", "busy or limiting this server's requests (HTTP 429); try again shortly")]
    [InlineData(400, "invalid_request_error", "context_length_exceeded", "This model's maximum context length is 128000 tokens.", "The model provider refused the request (HTTP 400): This model's maximum context length is 128000 tokens.")]
    public async Task A_provider_refusal_tells_the_client_what_to_do_and_keeps_the_providers_words_about_this_server_in_the_log(
        int status, string type, string code, string providerMessage, string told)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        provider.Failure = (status, type, code, providerMessage);
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, provider.ModelSettings());
        var client = await ChatApiClient.SignInAsync(host.Address, $"refused-{status}");

        var events = await client.ChatAsync(new { message = "hello", model = "test-gpt-4o" });

        var error = events[^1];
        Assert.Equal("error", error.Event);
        Assert.Equal("model_error", error.Payload.GetProperty("code").GetString());
        var message = error.Payload.GetProperty("message").GetString()!;
        Assert.Contains(told, message);
        if (status != 400)
        {
            // About this server's key, model or organization: for the operator's log, not for the chat's user.
            Assert.DoesNotContain(providerMessage, message);
        }
    }

    // Shared: the limits' own read finds Firestore down first, and nothing is counted. Memory: the session store does,
    // after the request was admitted and its budget held, and both are given back.
    [Theory]
    [InlineData("Shared")]
    [InlineData("Memory")]
    public async Task An_unreachable_firestore_answers_503_with_retry_after_before_the_model_is_called(string limitStore)
    {
        await using var provider = await OpenAiCompatibleServer.StartAsync();
        await using var host = await ChatApiHost.StartAsync("127.0.0.1:1", new Dictionary<string, string?>
        {
            ["Chat:DefaultModel"] = "test-model",
            ["Chat:Models:test-model:Endpoint"] = provider.BaseAddress.ToString(),
            ["Limits:Store"] = limitStore,
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "store-down-user");
        using var response = await client.PostChatAsync(new { message = "hello?" });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal("store-unavailable", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        Assert.Empty(provider.Requests);
        if (limitStore == "Memory")
        {
            // The budget it held is given back, and its request: nothing was spent.
            Assert.Equal(new LimitOptions().TokensPerWindow, await host.Services.GetRequiredService<UserLimiter>().TokensRemainingAsync("store-down-user", default));
            Assert.Equal("60", response.Headers.GetValues("RateLimit-Remaining").Single());
        }

        using var read = await client.Http.GetAsync("/api/sessions/some-session");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, read.StatusCode);
    }

    [Fact]
    public async Task Rate_and_quota_limits_answer_429_with_retry_after_and_ratelimit_headers()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Limits:RequestsPerWindow"] = "2",
            ["Limits:RequestWindowSeconds"] = "600",
            ["Chat:Offline:DeltaDelayMs"] = "0",
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "busy-user");
        for (var i = 0; i < 2; i++)
        {
            using var ok = await client.PostChatAsync(new { message = "hi" });
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal((1 - i).ToString(), ok.Headers.GetValues("RateLimit-Remaining").Single());
            await Sse.ReadAllAsync(ok);
        }

        using var limited = await client.PostChatAsync(new { message = "hi" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(limited.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 590, 600);
        Assert.Equal("2", limited.Headers.GetValues("RateLimit-Limit").Single());
        Assert.Equal("0", limited.Headers.GetValues("RateLimit-Remaining").Single());
        Assert.Equal("rate-limited", JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());

        // Another user is not affected.
        var other = await ChatApiClient.SignInAsync(host.Address, "calm-user");
        using var fine = await other.PostChatAsync(new { message = "hi" });
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
        await Sse.ReadAllAsync(fine);
    }

    [Fact]
    public async Task An_exhausted_token_quota_is_a_clear_problem_and_caps_the_budget_before()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Limits:TokensPerWindow"] = "400",
            ["Chat:Offline:DeltaDelayMs"] = "0",
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "thrifty-user");
        // The quota caps the first request's budget: it stops at the quota, not at budget_max.
        var first = await client.ChatAsync(new { message = "Write a long essay.", budget_max = 5000 });
        var done = first.Single(e => e.Event == "done").Payload;
        Assert.Equal(400, done.GetProperty("usage").GetProperty("budget_max").GetInt32());
        Assert.Equal("budget_exhausted", done.GetProperty("finish_reason").GetString());

        using var refused = await client.PostChatAsync(new { message = "more please" });
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.FromHours(23));
        var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("quota-exhausted", problem.GetProperty("code").GetString());
        Assert.Contains("400 tokens", problem.GetProperty("detail").GetString());
        Assert.Equal((400, 0, 0), (problem.GetProperty("quota_tokens").GetInt32(), problem.GetProperty("available_tokens").GetInt32(), problem.GetProperty("held_tokens").GetInt32()));
        // The RateLimit headers describe the request window, as on every other answer (one request of 60 used), not the quota.
        Assert.Equal(("60", "59"), (refused.Headers.GetValues("RateLimit-Limit").Single(), refused.Headers.GetValues("RateLimit-Remaining").Single()));
        Assert.InRange(int.Parse(refused.Headers.GetValues("RateLimit-Reset").Single(), CultureInfo.InvariantCulture), 1, 60);
    }

    [Fact]
    public async Task Answers_in_progress_hold_their_budgets_so_parallel_chats_cannot_overspend_the_quota()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Limits:TokensPerWindow"] = "3000",
            ["Chat:Offline:DeltaDelayMs"] = "20", // the first two answers are still running when the third asks
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "parallel-user");
        // A refused request leaves nothing held.
        using var unknown = await client.PostChatAsync(new { session_id = "no-such-session", message = "hello?" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using var first = await client.PostChatAsync(new { message = "Write a long essay about holds.", budget_max = 2000 });
        using var second = await client.PostChatAsync(new { message = "Write a long essay about quotas.", budget_max = 2000 });
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));

        // Both hold the whole quota now: before, each was given what was left of it, 2,000 tokens each.
        using var third = await client.PostChatAsync(new { message = "And one more?" });
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.Equal(UserLimiter.HeldRetryAfter, third.Headers.RetryAfter?.Delta);
        var problem = JsonDocument.Parse(await third.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("quota-exhausted", problem.GetProperty("code").GetString());
        Assert.Contains("Only 0 tokens are left in your quota while your answers in progress hold 3000", problem.GetProperty("detail").GetString());
        Assert.Equal((3000, 0, 3000), (problem.GetProperty("quota_tokens").GetInt32(), problem.GetProperty("available_tokens").GetInt32(), problem.GetProperty("held_tokens").GetInt32()));
        Assert.Equal("60", third.Headers.GetValues("RateLimit-Limit").Single());

        var spent = 0;
        foreach (var (response, budget) in new[] { (first, 2000), (second, 1000) })
        {
            using var cancel = await client.Http.PostAsync($"/api/chat/streams/{response.Headers.GetValues("X-Stream-Id").Single()}/cancel", null);
            var events = await Sse.ReadAllAsync(response);
            Assert.Equal(budget, events.First(e => e.Event == "token_count").Payload.GetProperty("budget_max").GetInt32());
            spent += events.Single(e => e.Event == "done").Payload.GetProperty("usage").GetProperty("total_tokens").GetInt32();
        }

        // Ended runs count what they spent, and give back the rest of what they held.
        var fourth = await client.ChatAsync(new { message = "hi" });
        Assert.Equal(3000 - spent, fourth.First(e => e.Event == "token_count").Payload.GetProperty("budget_max").GetInt32());
    }

    [Fact]
    public async Task Outside_development_there_is_no_token_endpoint_and_tokens_must_be_signed_with_the_configured_key()
    {
        const string key = "a-production-signing-key-of-sufficient-length-0123456789";
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Identity:SigningKey"] = key,
            ["DualWrite:ContentHashKey"] = ProductionContentHashKey,
        }, "Production");
        using var http = ChatApiClient.CreateHttpClient(host.Address);
        using var devToken = await http.PostAsync("/api/dev/token", new StringContent("{\"user_id\":\"x\"}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, devToken.StatusCode);

        var options = new ChatStack.ChatApi.Identity.ChatIdentityOptions { SigningKey = key };
        var good = ChatStack.ChatApi.Identity.IdentityExtensions.IssueDevelopmentToken(options, "prod-user", TimeProvider.System);
        var forged = ChatStack.ChatApi.Identity.IdentityExtensions.IssueDevelopmentToken(new() { SigningKey = key.Replace('a', 'b') }, "prod-user", TimeProvider.System);
        var expired = ChatStack.ChatApi.Identity.IdentityExtensions.IssueDevelopmentToken(options, "prod-user", new FakeTimeProvider(DateTimeOffset.UtcNow.AddDays(-2)));
        foreach (var (token, expected, code, detail) in new[]
        {
            (good, HttpStatusCode.NotFound, "session-not-found", "whatever"),
            (forged, HttpStatusCode.Unauthorized, "invalid-token", "The bearer token was refused (The signature"),
            (expired, HttpStatusCode.Unauthorized, "invalid-token", "The bearer token was refused (The token expired at"),
            ("not-a-jwt", HttpStatusCode.Unauthorized, "invalid-token", "The bearer token was refused"),
            (null, HttpStatusCode.Unauthorized, "unauthorized", "Send a bearer token"),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/sessions/whatever");
            request.Headers.Authorization = token is null ? null : new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            Assert.Equal(expected, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(code, problem.GetProperty("code").GetString());
            Assert.Contains(detail, problem.GetProperty("detail").GetString());
        }
    }

    [Theory]
    [InlineData(null, null, "Set Identity:Authority (an OpenID Connect issuer) or Identity:SigningKey")]
    [InlineData("", null, "Set Identity:Authority (an OpenID Connect issuer) or Identity:SigningKey")] // Identity__Authority= binds to ""
    [InlineData(null, "too-short-a-key-0123456789", "Identity:SigningKey is 26 bytes; HS256 needs at least 32")]
    public void Outside_development_identity_settings_that_cannot_validate_a_token_stop_start_up(string? authority, string? key, string message)
    {
        var e = Assert.Throws<InvalidOperationException>(() => ChatApiHost.StartAsync(stack.FirestoreHost,
            new Dictionary<string, string?> { ["Identity:Authority"] = authority, ["Identity:SigningKey"] = key, ["DualWrite:ContentHashKey"] = ProductionContentHashKey },
            "Production").GetAwaiter().GetResult());
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task Idle_streams_get_heartbeat_comments()
    {
        await using var host = await ChatApiHost.StartAsync(stack.FirestoreHost, new Dictionary<string, string?>
        {
            ["Chat:HeartbeatSeconds"] = "0.05",
            ["Chat:Offline:DeltaDelayMs"] = "150",
        });
        var client = await ChatApiClient.SignInAsync(host.Address, "patient-user");
        using var response = await client.PostChatAsync(new { message = "hi" });
        await using var body = await response.Content.ReadAsStreamAsync();
        var heartbeats = 0;
        var events = 0;
        await foreach (var message in Sse.ReadAsync(body))
        {
            if (message.IsComment)
            {
                heartbeats++;
            }
            else if (++events >= 6)
            {
                break;
            }
        }

        output.WriteLine($"{heartbeats} heartbeats in the first {events} events");
        Assert.True(heartbeats >= 2);
    }

    [Fact]
    public async Task A_store_failure_while_a_turn_starts_answers_503_and_leaves_the_session_free()
    {
        var (host, store) = await ChatApiHost.StartObservedAsync(stack.FirestoreHost);
        await using var ownedHost = host;
        var client = await ChatApiClient.SignInAsync(host.Address, "unlucky-user");
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;

        // The history read fails after the turn was claimed: 503, and the claim is let go.
        store.FailNextHistoryRead = true;
        using (var failed = await client.PostChatAsync(new { session_id = sessionId, message = "are you there?" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            Assert.Equal("store-unavailable", JsonDocument.Parse(await failed.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        var retried = await client.ChatAsync(new { session_id = sessionId, message = "are you there?" });
        Assert.Equal("done", retried[^1].Event);
        var roles = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Select(m => m.GetProperty("role").GetString());
        Assert.Equal(["user", "assistant", "user", "assistant"], roles);
    }

    [Fact]
    public async Task A_new_session_is_stored_in_the_commit_of_its_first_message_before_the_stream_starts()
    {
        var (host, store) = await ChatApiHost.StartObservedAsync(stack.FirestoreHost);
        await using var ownedHost = host;
        var client = await ChatApiClient.SignInAsync(host.Address, "one-commit-user");

        // The headers come once the message is saved: the session and the message can be read back at once.
        string sessionId;
        using (var response = await client.PostChatAsync(new { message = "hello there" }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            sessionId = response.Headers.GetValues("X-Session-Id").Single();
            Assert.Equal("one-commit-user", (await client.GetJsonAsync($"/api/sessions/{sessionId}")).GetProperty("user_id").GetString());
            Assert.Equal("hello there", (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages"))[0].GetProperty("content").GetString());
            Assert.Equal("done", (await Sse.ReadAllAsync(response))[^1].Event);
        }

        await client.ChatAsync(new { session_id = sessionId, message = "and again" });

        Assert.Equal([("user", true), ("assistant", false), ("user", false), ("assistant", false)], store.Appends);
        var session = await client.GetJsonAsync($"/api/sessions/{sessionId}");
        Assert.Equal(4, session.GetProperty("message_count").GetInt32());
        Assert.Equal("hello there", session.GetProperty("title").GetString());
    }

    [Fact]
    public async Task A_store_failure_while_saving_the_message_answers_503_saves_nothing_and_leaves_the_session_free()
    {
        var (host, store) = await ChatApiHost.StartObservedAsync(stack.FirestoreHost);
        await using var ownedHost = host;
        var client = await ChatApiClient.SignInAsync(host.Address, "lost-commit-user");

        // A new session: no session is left behind.
        store.FailNextAppend = true;
        using (var failed = await client.PostChatAsync(new { message = "first words" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            Assert.True(failed.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Equal("store-unavailable", JsonDocument.Parse(await failed.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
            Assert.False(failed.Headers.Contains("X-Session-Id"));
        }

        Assert.Equal(0, (await client.GetJsonAsync("/api/sessions")).GetProperty("sessions").GetArrayLength());

        // An existing session: its messages stay as they were, and the next message is taken at once.
        await client.ChatAsync(new { message = "first words" });
        var sessionId = client.LastSessionId!;
        store.FailNextAppend = true;
        using (var failed = await client.PostChatAsync(new { session_id = sessionId, message = "lost?" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            Assert.Equal("store-unavailable", JsonDocument.Parse(await failed.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }

        Assert.Equal(2, (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength());
        var retried = await client.ChatAsync(new { session_id = sessionId, message = "lost?" });
        Assert.Equal("done", retried[^1].Event);
        var roles = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Select(m => m.GetProperty("role").GetString());
        Assert.Equal(["user", "assistant", "user", "assistant"], roles);
    }

    [Fact]
    public async Task A_summarized_session_reads_only_what_follows_its_summary_and_a_history_search_still_finds_the_rest()
    {
        var (host, store) = await ChatApiHost.StartObservedAsync(stack.FirestoreHost);
        await using var ownedHost = host;
        var client = await ChatApiClient.SignInAsync(host.Address, "long-session-user");
        const string model = "chatstack-offline-small-context";
        await client.ChatAsync(new { message = "My boat is called Periwinkle. Tell me about boats.", model });
        var sessionId = client.LastSessionId!;
        var summarized = false;
        for (var turn = 1; turn < 10 && !summarized; turn++)
        {
            var events = await client.ChatAsync(new { session_id = sessionId, message = $"Turn {turn}: tell me about topic number {turn}.", model });
            summarized = events.Any(e => e.Event == "summarized");
        }

        Assert.True(summarized, "the small-context model summarizes within ten turns");
        var session = await client.GetJsonAsync($"/api/sessions/{sessionId}");
        var through = session.GetProperty("summary_through_message_id").GetString()!;
        var stored = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).GetArrayLength();

        // The next turn reads the messages after the summary, not the session's whole history.
        store.Reads.Clear();
        await client.ChatAsync(new { session_id = sessionId, message = "And what about topic number ten?", model });
        var read = Assert.Single(store.Reads);
        Assert.Equal(through, read.After);
        Assert.InRange(read.Returned, 1, stored - 1);

        // A search looks through the summarized messages too: the boat's name is only in the first one. (The turn
        // before may have summarized again, with so small a window.)
        through = (await client.GetJsonAsync($"/api/sessions/{sessionId}")).GetProperty("summary_through_message_id").GetString()!;
        store.Reads.Clear();
        var search = await client.ChatAsync(new { session_id = sessionId, message = "Search the history for Periwinkle.", model });
        var found = search.Single(e => e.Event == "tool_end").Payload;
        Assert.Equal("ok", found.GetProperty("status").GetString());
        Assert.Contains("My boat is called Periwinkle", found.GetProperty("result_summary").GetString());
        Assert.Equal([through, null], store.Reads.Select(r => r.After));
    }
}
