using System.Diagnostics;
using Microsoft.SemanticKernel;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// Tracks every tool call through Semantic Kernel's function filter: start and end events, timing, counting
/// of arguments and results, and a failed tool becoming a result the model can read instead of a crashed run.
/// </summary>
internal sealed class ToolInvocationFilter(AgentRun run) : IFunctionInvocationFilter
{
    public async Task OnFunctionInvocationAsync(FunctionInvocationContext context, Func<FunctionInvocationContext, Task> next)
    {
        var name = context.Function.Name;
        var arguments = context.Arguments.ToDictionary(a => a.Key, a => a.Value?.ToString());
        await run.OnToolStartAsync(name, arguments);
        var stopwatch = Stopwatch.StartNew();
        var status = "ok";
        try
        {
            await next(context);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            status = "error";
            context.Result = new FunctionResult(context.Function, $"error: {e.GetBaseException().Message}");
        }

        await run.OnToolEndAsync(name, arguments, context.Result.GetValue<object>()?.ToString() ?? "", stopwatch.Elapsed, status);
    }
}
