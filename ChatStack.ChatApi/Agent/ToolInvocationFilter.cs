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
        using var span = ChatTelemetry.Source.StartActivity($"{GenAiAttributes.Operations.ExecuteTool} {name}", ActivityKind.Internal);
        span?.SetTag(GenAiAttributes.OperationName, GenAiAttributes.Operations.ExecuteTool);
        span?.SetTag(GenAiAttributes.ToolName, name);
        span?.SetTag(GenAiAttributes.ToolType, "function");
        span?.SetTag(GenAiAttributes.ToolCallId, run.CurrentToolCallId);
        if (run.CaptureContent)
        {
            span?.SetTag(GenAiAttributes.ToolCallArguments, System.Text.Json.JsonSerializer.Serialize(arguments));
        }

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
            span.SetError(e.GetType().FullName ?? e.GetType().Name, run.CaptureContent ? e.GetBaseException().Message : null);
        }

        var result = context.Result.GetValue<object>()?.ToString() ?? "";
        span?.SetTag("chatstack.tool.status", status);
        if (run.CaptureContent)
        {
            span?.SetTag(GenAiAttributes.ToolCallResult, result);
        }

        await run.OnToolEndAsync(name, arguments, result, stopwatch.Elapsed, status, errorType);
    }
}
