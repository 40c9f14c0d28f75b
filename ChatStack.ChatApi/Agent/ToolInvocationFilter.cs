using System.Diagnostics;
using ChatStack.ChatApi.Telemetry;
using ChatStack.Contracts.Telemetry;
using Microsoft.SemanticKernel;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// Tracks every tool call through Semantic Kernel's function filter: start and end events, timing, counting
/// of arguments and results, an <c>execute_tool {name}</c> span, and a failed tool becoming a result the model
/// can read instead of a crashed run.
/// </summary>
internal sealed class ToolInvocationFilter(AgentRun run) : IFunctionInvocationFilter
{
    public async Task OnFunctionInvocationAsync(FunctionInvocationContext context, Func<FunctionInvocationContext, Task> next)
    {
        var name = context.Function.Name;
        var arguments = context.Arguments.ToDictionary(a => a.Key, a => a.Value?.ToString());
        // Current for the whole call, so the tool message's Firestore commit and outbox record hang under it.
        using var span = ToolSpan.Start(run, name, arguments);
        await run.OnToolStartAsync(name, arguments);
        var stopwatch = Stopwatch.StartNew();
        var status = "ok";
        string? errorType = null;
        try
        {
            await next(context);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            status = "error";
            errorType = e.GetBaseException().GetType().Name;
            context.Result = new FunctionResult(context.Function, $"error: {e.GetBaseException().Message}");
            // The message quotes the tool's arguments ("Unexpected ')' in '…'"): content, exported only with capture on.
            span.Fail(e.GetType().FullName ?? e.GetType().Name, e.GetBaseException().Message);
        }

        var result = context.Result.GetValue<object>()?.ToString() ?? "";
        span.End(status, result);
        await run.OnToolEndAsync(name, arguments, result, stopwatch.Elapsed, status, errorType);
    }
}

/// <summary>The <c>execute_tool {name}</c> span of one tool call, invoked through the filter or refused before it.</summary>
internal sealed class ToolSpan(Activity? activity, bool captureContent) : IDisposable
{
    public static ToolSpan Start(AgentRun run, string name, IReadOnlyDictionary<string, string?> arguments)
    {
        var span = ChatTelemetry.Source.StartActivity($"{GenAiAttributes.Operations.ExecuteTool} {name}", ActivityKind.Internal);
        span?.SetTag(GenAiAttributes.OperationName, GenAiAttributes.Operations.ExecuteTool);
        span?.SetTag(GenAiAttributes.ToolName, name);
        span?.SetTag(GenAiAttributes.ToolType, "function");
        span?.SetTag(GenAiAttributes.ToolCallId, run.CurrentToolCallId);
        if (run.CaptureContent)
        {
            span?.SetTag(GenAiAttributes.ToolCallArguments, GenAiContent.ArgumentsJson(arguments));
        }

        return new ToolSpan(span, run.CaptureContent);
    }

    /// <summary>Marks the call failed; <paramref name="message"/> can quote the model's arguments, so only with capture on.</summary>
    public void Fail(string errorType, string message) => activity.SetError(errorType, captureContent ? message : null);

    public void End(string status, string result)
    {
        activity?.SetTag("chatstack.tool.status", status);
        if (captureContent)
        {
            activity?.SetTag(GenAiAttributes.ToolCallResult, GenAiContent.Text(result));
        }
    }

    public void Dispose() => activity?.Dispose();
}
