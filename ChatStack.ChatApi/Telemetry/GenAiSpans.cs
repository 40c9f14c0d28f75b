using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ChatStack.ChatApi.Agent;
using ChatStack.Contracts;
using ChatStack.Contracts.Telemetry;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace ChatStack.ChatApi.Telemetry;

/// <summary>
/// The <c>invoke_agent chatstack</c> span of one agent run: conversation, model, usage, and the budget as it moves
/// through its phases (an event per phase change, the final figures as attributes).
/// </summary>
internal sealed class AgentRunSpan(Activity? activity, bool captureContent) : IDisposable
{
    private string? _phase;

    public static AgentRunSpan Start(ChatRunRequest request, bool captureContent)
    {
        var activity = ChatTelemetry.Source.StartActivity($"{GenAiAttributes.Operations.InvokeAgent} {ChatTelemetry.AgentName}", ActivityKind.Internal);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(GenAiAttributes.OperationName, GenAiAttributes.Operations.InvokeAgent);
            activity.SetTag(GenAiAttributes.ProviderName, ModelCallSpan.ProviderOf(request.Model));
            activity.SetTag(GenAiAttributes.AgentName, ChatTelemetry.AgentName);
            activity.SetTag(GenAiAttributes.ConversationId, request.Session.Id);
            activity.SetTag(GenAiAttributes.RequestModel, ModelCallSpan.RequestModelOf(request.Model));
            activity.SetTag(BudgetAttributes.Max, request.BudgetMax);
            if (captureContent)
            {
                activity.SetTag(GenAiAttributes.InputMessages, GenAiContent.Messages([new ChatMessageContent(AuthorRole.User, request.Message)]));
            }
        }

        return new AgentRunSpan(activity, captureContent);
    }

    /// <summary>The budget as the stream reports it; an event only when the phase changes, so a long answer adds a handful, not one per checkpoint.</summary>
    public void OnBudget(TokenBudget budget, string phase)
    {
        if (activity is null || phase == _phase)
        {
            return;
        }

        _phase = phase;
        activity.AddEvent(new ActivityEvent(BudgetAttributes.PhaseEvent, tags: new ActivityTagsCollection
        {
            [BudgetAttributes.Phase] = phase,
            [BudgetAttributes.Total] = budget.TotalTokens,
            [BudgetAttributes.Remaining] = budget.BudgetRemaining,
            [BudgetAttributes.ShouldSummarize] = budget.ShouldSummarize,
        }));
    }

    public void OnSummarized(int replacedMessages, int tokensBefore, int tokensAfter) =>
        activity?.AddEvent(new ActivityEvent(BudgetAttributes.SummarizedEvent, tags: new ActivityTagsCollection
        {
            ["chatstack.summarized.replaced_messages"] = replacedMessages,
            ["chatstack.summarized.tokens_before"] = tokensBefore,
            ["chatstack.summarized.tokens_after"] = tokensAfter,
        }));

    public void Finish(TokenBudget budget, string finishReason, string? errorCode, ReadOnlySpan<char> answer)
    {
        if (activity is null)
        {
            return;
        }

        if (finishReason == FinishReasons.BudgetExhausted)
        {
            activity.AddEvent(new ActivityEvent(BudgetAttributes.ExhaustedEvent, tags: new ActivityTagsCollection
            {
                [BudgetAttributes.Total] = budget.TotalTokens,
                [BudgetAttributes.Max] = budget.BudgetMax,
            }));
        }

        activity.SetTag(GenAiAttributes.UsageInputTokens, budget.PromptTokens);
        activity.SetTag(GenAiAttributes.UsageOutputTokens, budget.CompletionTokens);
        activity.SetTag(BudgetAttributes.Max, budget.BudgetMax);
        activity.SetTag(BudgetAttributes.Remaining, budget.BudgetRemaining);
        activity.SetTag(BudgetAttributes.Total, budget.TotalTokens);
        activity.SetTag(BudgetAttributes.Phase, _phase);
        activity.SetTag(BudgetAttributes.ShouldSummarize, budget.ShouldSummarize);
        activity.SetTag(BudgetAttributes.FinishReason, finishReason);
        if (captureContent && answer.Length > 0)
        {
            activity.SetTag(GenAiAttributes.OutputMessages, GenAiContent.Output(answer.ToString(), [], finishReason));
        }

        if (errorCode is not null)
        {
            activity.SetError(errorCode);
        }
    }

    public void Dispose() => activity?.Dispose();
}

/// <summary>
/// The <c>chat {model}</c> span of one model call, and the GenAI client metrics it feeds: duration, time to first
/// chunk (streaming calls only), and token usage, the provider's when it reports it and ChatStack's exact count
/// otherwise (a call cut short by the budget or a disconnect never gets the provider's usage); none for a call that
/// failed before its first chunk.
/// </summary>
internal sealed class ModelCallSpan : IDisposable
{
    private readonly Activity? _activity;
    private readonly ChatMetrics _metrics;
    private readonly string _provider;
    private readonly string _requestModel;
    private readonly bool _streaming;
    private readonly bool _captureContent;
    private readonly long _started = Stopwatch.GetTimestamp();
    private bool _firstChunk = true;
    private string? _responseModel;
    private string? _finishReason;
    private string? _errorType;
    private (int Input, int Output, bool FromProvider)? _usage;

    private ModelCallSpan(ModelSpec model, int maxTokens, bool streaming, bool captureContent, ChatHistory context, ChatMetrics metrics)
    {
        _metrics = metrics;
        _provider = ProviderOf(model);
        _requestModel = RequestModelOf(model);
        _streaming = streaming;
        _captureContent = captureContent;
        _activity = ChatTelemetry.Source.StartActivity($"{GenAiAttributes.Operations.Chat} {_requestModel}", ActivityKind.Client);
        if (_activity is { IsAllDataRequested: true })
        {
            _activity.SetTag(GenAiAttributes.OperationName, GenAiAttributes.Operations.Chat);
            _activity.SetTag(GenAiAttributes.ProviderName, _provider);
            _activity.SetTag(GenAiAttributes.RequestModel, _requestModel);
            _activity.SetTag(GenAiAttributes.RequestMaxTokens, maxTokens);
            if (model.Options.Provider != ModelProvider.Offline)
            {
                var endpoint = model.Options.Endpoint ?? new Uri("https://api.openai.com/v1/");
                _activity.SetTag(GenAiAttributes.ServerAddress, endpoint.Host);
                _activity.SetTag(GenAiAttributes.ServerPort, endpoint.Port);
            }

            if (captureContent)
            {
                _activity.SetTag(GenAiAttributes.InputMessages, GenAiContent.Messages(context));
            }
        }
    }

    public static ModelCallSpan Start(ModelSpec model, int maxTokens, bool streaming, bool captureContent, ChatHistory context, ChatMetrics metrics) =>
        new(model, maxTokens, streaming, captureContent, context, metrics);

    public static string ProviderOf(ModelSpec model) =>
        model.Options.Provider == ModelProvider.Offline ? GenAiAttributes.Providers.Offline : GenAiAttributes.Providers.OpenAi;

    public static string RequestModelOf(ModelSpec model) => model.Options.ProviderModelId ?? model.Name;

    /// <summary>
    /// The model the provider says answered (OpenAI names the dated snapshot behind an alias), from its own chunk or
    /// reply: SK's <c>ModelId</c> is the model that was asked for. Other services (the offline one) have only that.
    /// </summary>
    public static string? ResponseModelOf(object? innerContent, string? modelId) => innerContent switch
    {
        OpenAI.Chat.StreamingChatCompletionUpdate { Model: { Length: > 0 } model } => model,
        OpenAI.Chat.ChatCompletion { Model: { Length: > 0 } model } => model,
        _ => modelId,
    };

    /// <summary>Every chunk (or the one reply): the first one stops the time-to-first-chunk clock.</summary>
    public void OnChunk(string? modelId, IReadOnlyDictionary<string, object?>? metadata)
    {
        if (_firstChunk)
        {
            _firstChunk = false;
            if (_streaming)
            {
                _metrics.TimeToFirstChunk.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, ChatMetrics.ModelCallTags(_provider, _requestModel, null));
            }
        }

        _responseModel = modelId ?? _responseModel;
        if (metadata is null)
        {
            return;
        }

        if (metadata.TryGetValue("FinishReason", out var finish) && finish?.ToString() is { Length: > 0 } reason)
        {
            _finishReason = SnakeCase(reason);
        }

        if (metadata.TryGetValue("Id", out var id) && id?.ToString() is { Length: > 0 } responseId)
        {
            _activity?.SetTag(GenAiAttributes.ResponseId, responseId);
        }
    }

    public void SetUsage(int input, int output, bool fromProvider) => _usage = (input, output, fromProvider);

    public bool HasUsage => _usage is not null;

    /// <summary>
    /// The provider refused the call or was never reached (an error, not a cancellation, before any chunk): it
    /// used no tokens, so none are recorded.
    /// </summary>
    public bool FailedBeforeFirstChunk => _firstChunk && _errorType is not null && _errorType != "cancelled";

    public void SetOutput(ReadOnlySpan<char> text, IReadOnlyList<FunctionCallContent> calls)
    {
        if (_captureContent && _activity is not null)
        {
            _activity.SetTag(GenAiAttributes.OutputMessages, GenAiContent.Output(text.ToString(), calls, _finishReason));
        }
    }

    public void Fail(Exception e)
    {
        if (e is OperationCanceledException)
        {
            // The reader went away: not a failure of the model, but the duration metric should tell it apart.
            _errorType = "cancelled";
            _activity?.SetTag(GenAiAttributes.ErrorType, _errorType);
            return;
        }

        _errorType = e.GetType().FullName ?? e.GetType().Name;
        _activity.SetError(_errorType, e.GetBaseException().Message);
    }

    public void Dispose()
    {
        var tags = ChatMetrics.ModelCallTags(_provider, _requestModel, _responseModel);
        if (_usage is { } usage)
        {
            _activity?.SetTag(GenAiAttributes.UsageInputTokens, usage.Input);
            _activity?.SetTag(GenAiAttributes.UsageOutputTokens, usage.Output);
            _activity?.SetTag(BudgetAttributes.UsageSource, usage.FromProvider ? "provider" : "counted");
            var input = tags;
            input.Add(GenAiAttributes.TokenType, GenAiAttributes.TokenTypes.Input);
            _metrics.TokenUsage.Record(usage.Input, input);
            var output = tags;
            output.Add(GenAiAttributes.TokenType, GenAiAttributes.TokenTypes.Output);
            _metrics.TokenUsage.Record(usage.Output, output);
        }

        if (_responseModel is not null)
        {
            _activity?.SetTag(GenAiAttributes.ResponseModel, _responseModel);
        }

        if (_finishReason is not null)
        {
            _activity?.SetTag(GenAiAttributes.ResponseFinishReasons, new[] { _finishReason });
        }

        if (_errorType is not null)
        {
            tags.Add(GenAiAttributes.ErrorType, _errorType);
        }

        _metrics.OperationDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, tags);
        _activity?.Dispose();
    }

    // SK reports OpenAI's finish reasons as enum names (ToolCalls); the conventions use the wire values (tool_calls).
    private static string SnakeCase(string value)
    {
        var text = new StringBuilder(value.Length + 4);
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsUpper(value[i]) && i > 0 && value[i - 1] != '_')
            {
                text.Append('_');
            }

            text.Append(char.ToLowerInvariant(value[i]));
        }

        return text.ToString();
    }
}

/// <summary>Message content in the JSON shape of the GenAI conventions (role, parts); only built when capture is on.</summary>
internal static class GenAiContent
{
    /// <summary>
    /// Longest text captured in one part, argument or result. An answer can be 1 MB (a run of '=' is 64 characters a
    /// token) and a context holds every message: whole, one span would outgrow OTLP exporters' and backends' limits
    /// (often 4 MB a request, a few KB an attribute), and a backend that cuts the attribute breaks its JSON.
    /// </summary>
    public const int MaxCapturedChars = 16 * 1024;

    // Readable in a trace viewer: non-ASCII text and '+' as themselves, as the SSE stream sends them.
    private static readonly System.Text.Json.JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The text as captured: whole up to <see cref="MaxCapturedChars"/>, else its start and how much was left out.</summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(text))]
    public static string? Text(string? text)
    {
        if (text is null || text.Length <= MaxCapturedChars)
        {
            return text;
        }

        var shortened = text.Shorten(MaxCapturedChars + 1); // at most MaxCapturedChars of the text, then "…"
        return string.Create(CultureInfo.InvariantCulture, $"{shortened} [{text.Length - (shortened.Length - 1)} more characters not captured]");
    }

    public static string Messages(IEnumerable<ChatMessageContent> messages)
    {
        var array = new JsonArray();
        foreach (var message in messages)
        {
            var parts = new JsonArray();
            if (!string.IsNullOrEmpty(message.Content))
            {
                parts.Add(new JsonObject { ["type"] = "text", ["content"] = Text(message.Content) });
            }

            foreach (var item in message.Items)
            {
                switch (item)
                {
                    case FunctionCallContent call:
                        parts.Add(new JsonObject { ["type"] = "tool_call", ["id"] = call.Id, ["name"] = call.FunctionName, ["arguments"] = Arguments(call.Arguments) });
                        break;
                    case FunctionResultContent result:
                        parts.Add(new JsonObject { ["type"] = "tool_call_response", ["id"] = result.CallId, ["response"] = Text(result.Result?.ToString()) });
                        break;
                }
            }

            array.Add(new JsonObject { ["role"] = message.Role.Label, ["parts"] = parts });
        }

        return array.ToJsonString(Json);
    }

    public static string Output(string text, IReadOnlyList<FunctionCallContent> calls, string? finishReason)
    {
        var parts = new JsonArray();
        if (text.Length > 0)
        {
            parts.Add(new JsonObject { ["type"] = "text", ["content"] = Text(text) });
        }

        foreach (var call in calls)
        {
            parts.Add(new JsonObject { ["type"] = "tool_call", ["id"] = call.Id, ["name"] = call.FunctionName, ["arguments"] = Arguments(call.Arguments) });
        }

        return new JsonArray { new JsonObject { ["role"] = "assistant", ["parts"] = parts, ["finish_reason"] = finishReason } }.ToJsonString(Json);
    }

    /// <summary>A tool call's arguments as captured on its <c>execute_tool</c> span: the same JSON as in the messages.</summary>
    public static string ArgumentsJson(IReadOnlyDictionary<string, string?> arguments) => Arguments(arguments).ToJsonString(Json);

    private static JsonObject Arguments<T>(IEnumerable<KeyValuePair<string, T>>? arguments)
    {
        var json = new JsonObject();
        foreach (var (key, value) in arguments ?? [])
        {
            json[key] = Text(value?.ToString());
        }

        return json;
    }
}
