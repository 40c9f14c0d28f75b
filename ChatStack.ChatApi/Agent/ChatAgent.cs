using ChatStack.ChatApi.Budget;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using ChatStack.ChatApi.Telemetry;
using Microsoft.Extensions.Options;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// What one chat request asks the agent to do, after validation and admission. <paramref name="History"/> holds the
/// session's messages after its summary (all of them when it has none): what the model may see verbatim. A
/// <paramref name="NewSession"/> is not stored yet: the run creates it in the commit of its first message.
/// <paramref name="Quota"/> is the run's hold on the user's token quota: its size is the run's budget, and the run
/// settles it with what it spent.
/// </summary>
/// <param name="Turn">The run's hold on its session for every instance (claimed with the user's message, renewed, given up
/// with the answer); null where the rule is kept per instance (<see cref="ChatOptions.SharedTurns"/> off).</param>
internal sealed record ChatRunRequest(string UserId, ChatSession Session, IReadOnlyList<ChatMessageRecord> History, string Message, ModelSpec Model, UserLimiter.TokenHold Quota,
    bool NewSession = false, TurnLease? Turn = null)
{
    public int BudgetMax => (int)Quota.Tokens;
}

/// <summary>Runs the agent for one request; the per-run state lives in <see cref="AgentRun"/>.</summary>
internal sealed class ChatAgent(
    ChatCompletionServices completions,
    ITokenCounterProvider counters,
    IChatSessionStore store,
    DualWrite.ChatEventOutbox outbox,
    DualWrite.OutboxSignal outboxSignal,
    IOptions<ChatOptions> options,
    TimeProvider time,
    ILogger<ChatAgent> logger,
    ChatMetrics metrics,
    ContentCaptureOptions capture)
{
    /// <summary>A run ready to execute; see <see cref="AgentRun.Admitted"/> for when its request may answer.</summary>
    public AgentRun Create(ChatRunRequest request, IChatEventWriter events) =>
        new(request, events, completions.For(request.Model.Name), counters.ForModel(request.Model.Name),
            store, outbox, outboxSignal, options.Value, time, logger, metrics, capture);
}
