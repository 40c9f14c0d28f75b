using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ChatStack.Tests.Support;

/// <summary>
/// A tiny OpenAI-compatible server: <c>POST /v1/chat/completions</c> with <c>stream: true</c> answers
/// <c>chat.completion.chunk</c> SSE ending with a usage chunk and <c>[DONE]</c>, like OpenAI does when asked for
/// <c>stream_options.include_usage</c>. When the last message asks to multiply and tools are offered, it first
/// calls the <c>tools-calculate</c> function; after the tool result it answers. Without <c>stream: true</c> it answers
/// one <c>chat.completion</c> (a summary, as the chat API asks for one).
/// </summary>
public sealed class OpenAiCompatibleServer : IAsyncDisposable
{
    public const int PromptTokensPerCall = 123;
    public const int CompletionTokensPerCall = 45;

    private LocalServer _server = null!;

    /// <summary>Base URL to configure as the model's endpoint (ends in /v1/).</summary>
    public Uri BaseAddress => new(_server.Address, "v1/");

    /// <summary>Every request body received, in order.</summary>
    public ConcurrentQueue<JsonNode> Requests { get; } = new();

    /// <summary>When set, every request is refused with this status and OpenAI's error body (and <c>Retry-After: 0</c>).</summary>
    public (int Status, string Type, string Code, string Message)? Failure { get; set; }

    /// <summary>
    /// When set, answers name this model instead of the one asked for, as OpenAI names the dated snapshot
    /// (<c>gpt-4o-mini-2024-07-18</c>) that served an alias.
    /// </summary>
    public string? ResponseModel { get; set; }

    public const string Summary = "The user sent two long messages of filler words.";

    /// <summary>
    /// When set, a streamed answer is <c>Chunk</c> sent <c>Count</c> times (a model looping on long tokens) instead of
    /// <see cref="AnswerChunks"/>, each chunk flushed on its own.
    /// </summary>
    public (string Chunk, int Count)? RepeatedAnswer { get; set; }

    /// <summary>What a call that does not stream (a summary) answers.</summary>
    public string SummaryText { get; set; } = Summary;

    /// <summary>When set, the tool call (function name and raw arguments) asked for instead of the calculator's.</summary>
    public (string Name, string Arguments)? ToolCall { get; set; }

    /// <summary>When set, the expression the <c>tools-calculate</c> call asks for instead of <c>17 * 3</c>.</summary>
    public string? CalculateExpression { get; set; }

    /// <summary>A pause after each chunk of the repeated answer, as a model streaming at its own pace.</summary>
    public int RepeatedAnswerDelayMs { get; set; }

    /// <summary>Completes with the chunks written when a repeated answer's reader went away before its end.</summary>
    public TaskCompletionSource<int> RepeatedAnswerAbandoned { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static readonly string[] AnswerChunks = ["The ", "answer ", "is ", "51", ". ", "Multiplying ", "17 ", "by ", "3 ", "gives ", "51."];

    /// <summary>The chat API's configuration of a model <c>test-gpt-4o</c> served by this server as <c>gpt-4o-mini</c>.</summary>
    public Dictionary<string, string?> ModelSettings() => new()
    {
        ["Chat:Models:test-gpt-4o:Provider"] = "OpenAI",
        ["Chat:Models:test-gpt-4o:Endpoint"] = BaseAddress.ToString(),
        ["Chat:Models:test-gpt-4o:ApiKey"] = "test-key",
        ["Chat:Models:test-gpt-4o:ProviderModelId"] = "gpt-4o-mini",
    };

    public static async Task<OpenAiCompatibleServer> StartAsync()
    {
        var server = new OpenAiCompatibleServer();
        server._server = await LocalServer.StartAsync(app => app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            var body = (await JsonNode.ParseAsync(context.Request.Body))!;
            server.Requests.Enqueue(body);
            if (server.Failure is { } failure)
            {
                context.Response.StatusCode = failure.Status;
                context.Response.Headers.RetryAfter = "0";
                await context.Response.WriteAsJsonAsync(new { error = new { message = failure.Message, type = failure.Type, param = (string?)null, code = failure.Code } });
                return;
            }

            var model = server.ResponseModel ?? body["model"]?.GetValue<string>() ?? "test";
            if (body["stream"]?.GetValue<bool>() == true)
            {
                await WriteStreamAsync(server, context, body, model);
            }
            else
            {
                await context.Response.WriteAsJsonAsync(new
                {
                    id = "chatcmpl-test",
                    @object = "chat.completion",
                    created = 1_700_000_000,
                    model,
                    choices = new[] { new { index = 0, message = new { role = "assistant", content = server.SummaryText }, finish_reason = "stop" } },
                    usage = new { prompt_tokens = PromptTokensPerCall, completion_tokens = CompletionTokensPerCall, total_tokens = PromptTokensPerCall + CompletionTokensPerCall },
                });
            }
        }));
        return server;
    }

    private static async Task WriteStreamAsync(OpenAiCompatibleServer server, HttpContext context, JsonNode body, string model)
    {
        context.Response.ContentType = "text/event-stream";
        var messages = body["messages"]!.AsArray();
        var last = messages[^1]!;
        var wantsTool = body["tools"] is JsonArray { Count: > 0 } && last["role"]?.GetValue<string>() == "user"
            && (last["content"]?.ToString() ?? "").Contains("multiply", StringComparison.OrdinalIgnoreCase);

        async Task Send(object chunk)
        {
            await context.Response.WriteAsync($"data: {JsonSerializer.Serialize(chunk)}\n\n");
            await context.Response.Body.FlushAsync();
        }

        object Chunk(object delta, string? finish) => new
        {
            id = "chatcmpl-test",
            @object = "chat.completion.chunk",
            created = 1_700_000_000,
            model,
            choices = new[] { new { index = 0, delta, finish_reason = finish } },
        };

        await Send(Chunk(new { role = "assistant", content = "" }, null));
        if (wantsTool && server.ToolCall is var (toolName, toolArguments))
        {
            await Send(Chunk(new
            {
                tool_calls = new[] { new { index = 0, id = "call_scripted_1", type = "function", function = new { name = toolName, arguments = toolArguments } } },
            }, null));
            await Send(Chunk(new { }, "tool_calls"));
        }
        else if (wantsTool && server.CalculateExpression is { } expression)
        {
            await Send(Chunk(new
            {
                tool_calls = new[]
                {
                    new { index = 0, id = "call_calc_1", type = "function", function = new { name = "tools-calculate", arguments = JsonSerializer.Serialize(new { expression }) } },
                },
            }, null));
            await Send(Chunk(new { }, "tool_calls"));
        }
        else if (wantsTool)
        {
            await Send(Chunk(new
            {
                tool_calls = new[]
                {
                    new { index = 0, id = "call_calc_1", type = "function", function = new { name = "tools-calculate", arguments = "{\"expression\":" } },
                },
            }, null));
            await Send(Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = "\"17 * 3\"}" } } } }, null));
            await Send(Chunk(new { }, "tool_calls"));
        }
        else if (server.RepeatedAnswer is var (chunk, count))
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    // Kestrel drops writes to a connection the client closed rather than failing them: asked each time.
                    context.RequestAborted.ThrowIfCancellationRequested();
                    await Send(Chunk(new { content = chunk }, null));
                    if (server.RepeatedAnswerDelayMs > 0)
                    {
                        await Task.Delay(server.RepeatedAnswerDelayMs, context.RequestAborted);
                    }
                    else if (i % 64 == 63)
                    {
                        // A pause now and then, as a model has, so Kestrel notices a client that left before the whole
                        // answer went into socket buffers and dropped writes (it then never would: a flaky test).
                        await Task.Delay(1, context.RequestAborted);
                    }
                }
                catch (Exception) when (context.RequestAborted.IsCancellationRequested)
                {
                    server.RepeatedAnswerAbandoned.TrySetResult(i);
                    return;
                }
            }

            await Send(Chunk(new { }, "stop"));
        }
        else
        {
            foreach (var text in AnswerChunks)
            {
                await Send(Chunk(new { content = text }, null));
            }

            await Send(Chunk(new { }, "stop"));
        }

        // The final usage chunk: no choices, just usage.
        await Send(new
        {
            id = "chatcmpl-test",
            @object = "chat.completion.chunk",
            created = 1_700_000_000,
            model,
            choices = Array.Empty<object>(),
            usage = new { prompt_tokens = PromptTokensPerCall, completion_tokens = CompletionTokensPerCall, total_tokens = PromptTokensPerCall + CompletionTokensPerCall },
        });
        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
