using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Budget;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using ChatStack.ChatApi.Telemetry;
using ChatStack.Contracts;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// One agent run: count the message (ingress), load history and compact it if needed (retrieval), stream the
/// model with tool round trips (model_stream, tool), then reconcile, persist and report (finalize). Whatever
/// happens — budget exhausted, client gone, provider failure — what was generated is kept and counted.
/// </summary>
internal sealed class AgentRun(
    ChatRunRequest request,
    IChatEventWriter events,
    IChatCompletionService model,
    ITokenCounter counter,
    IChatSessionStore store,
    DualWrite.ChatEventOutbox outbox,
    DualWrite.OutboxSignal outboxSignal,
    ChatOptions options,
    TimeProvider time,
    ILogger logger,
    ChatMetrics metrics,
    ContentCaptureOptions capture)
{
    private readonly BudgetTracker _budget = new(request.Model.Name, request.BudgetMax, request.Model.Options.ContextWindow, options.SummarizeShare, options.SummarizeBudgetShare, time);
    private readonly AnswerText _answer = new();
    private readonly StoredTextSize _answerSize = new(options.MaxAnswerBytes, outbox.CarriesContent);
    private ChatSession _session = request.Session;

    // A tool's result and arguments, and a summary, are stored only up to here: the tools' own results are short (a
    // time, a number, three snippets), but an error can quote what the model wrote, and a provider may ignore the
    // summary's max_tokens. 64 KiB each keeps a tool message (two of them, and its record as JSON) far below 1 MiB.
    private const int MaxToolTextBytes = 64 * 1024;
    private const int MaxSummaryBytes = 64 * 1024;

    /// <summary>Messages a history search reads at a time: at ~1 MB a message at most, a page stays within tens of MB.</summary>
    internal const int SearchPageSize = 50;

    // Completion tokens of finished model calls, tool arguments and summaries; the live call adds its own.
    private int _completionBase;
    private AnswerTokenCounter? _live;
    private int? _answerTokens; // the whole answer's count, when one model call wrote all of it
    private int _nextCheckpoint = options.CheckpointTokens;
    private int _providerPrompt;
    private int _providerCompletion;
    private int _modelCalls;
    private int _modelCallsReported;
    private string? _providerFinish;
    private int _persistedMessages;
    private AgentRunSpan? _span;
    private string _userMessageId = "";
    private readonly TaskCompletionSource _admitted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The run's hold on its session, for every instance: claimed with the user's message, renewed every third of its
    // lifetime until the last commit gives it up.
    private readonly TurnLease? _turn = request.Turn;
    private readonly CancellationTokenSource _renewing = new();
    private Task _renewal = Task.CompletedTask;

    public TokenBudget Budget => _budget.Current;

    /// <summary>
    /// Completes once the user's message is saved (with its session, when new) and the run goes on; faulted with the
    /// failure of that commit otherwise, nothing saved: the run then ends without an event, and the request answers
    /// with a problem instead of a stream (and logs it, once).
    /// </summary>
    public Task Admitted => _admitted.Task;

    public async Task ExecuteAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RunAsync(cancellationToken);
        }
        finally
        {
            await StopRenewingAsync();
            // Settled before `done` (or with nothing, when not admitted); a run that failed on the way pays what it counted.
            await request.Quota.SettleAsync(_budget.Current.TotalTokens);
            _admitted.TrySetException(new InvalidOperationException("The run ended before it saved the user's message."));
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var span = _span = AgentRunSpan.Start(request, capture.Enabled);
        using var answerBuffer = _answer; // the pooled buffer goes back when the run ends
        string finishReason;
        ErrorEvent? error = null;
        if (!await AdmitAsync(cancellationToken))
        {
            var failure = Admitted.Exception?.GetBaseException();
            span.Finish(_budget.Current, FinishReasons.Error, failure switch
            {
                null or ChatStoreUnavailableException => "store_unavailable",
                ChatSessionBusyException => "turn_in_progress",
                _ => failure.GetType().Name,
            }, default);
            return;
        }

        try
        {
            var context = await RetrievalAsync(cancellationToken);
            if (_budget.IsExhausted && _budget.Current.CompletionTokens > 0)
            {
                // A summary longer than it was asked to be (a provider that ignores max_tokens) spent what was left:
                // the budget ran out, the context did not outgrow it. The answering call is not made, nor charged.
                _budget.SetContext(0);
                finishReason = FinishReasons.BudgetExhausted;
            }
            else if (_budget.IsExhausted)
            {
                (finishReason, error) = (FinishReasons.Error, ContextOverBudget());
            }
            else
            {
                finishReason = await GenerateAsync(context, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            finishReason = FinishReasons.Cancelled;
        }
        catch (ChatStoreUnavailableException e)
        {
            logger.LogWarning(e, "Chat store failed during a run of session {SessionId}", _session.Id);
            (finishReason, error) = (FinishReasons.Error, new ErrorEvent("store_unavailable", "The conversation store is unavailable; try again shortly."));
        }
        catch (ChatStoreRefusedException e)
        {
            // A save mid-run (a tool message, the summary) refused for good, say the session deleted meanwhile: the
            // store's failure, not the model's. Finalize still tries to keep the answer so far, as for an outage.
            logger.LogError(e, "The store refused a save ({Status}) during a run of session {SessionId}", e.StatusCode, _session.Id);
            (finishReason, error) = (FinishReasons.Error, new ErrorEvent("store_error", "The conversation store refused to save part of this turn, so it stopped."));
        }
        catch (Exception e)
        {
            logger.LogError(e, "Model call failed for session {SessionId} with model {Model}", _session.Id, request.Model.Name);
            (finishReason, error) = (FinishReasons.Error, new ErrorEvent("model_error", ModelFailure.Describe(e)));
        }

        error = await FinalizeAsync(_userMessageId, finishReason, error);
        var modelTags = new System.Diagnostics.TagList
        {
            { Contracts.Telemetry.GenAiAttributes.ProviderName, ModelCallSpan.ProviderOf(request.Model) },
            { Contracts.Telemetry.GenAiAttributes.RequestModel, ModelCallSpan.RequestModelOf(request.Model) },
        };
        if (finishReason == FinishReasons.BudgetExhausted)
        {
            metrics.BudgetExhaustions.Add(1, modelTags);
        }

        modelTags.Add(Contracts.Telemetry.BudgetAttributes.FinishReason, error is null ? finishReason : FinishReasons.Error);
        metrics.BudgetRemaining.Record(_budget.Current.BudgetRemaining, modelTags);
        span.Finish(_budget.Current, error is null ? finishReason : FinishReasons.Error, error?.Code, _answer.AsSpan());
    }

    private async Task<bool> AdmitAsync(CancellationToken cancellationToken)
    {
        try
        {
            _userMessageId = await IngressAsync(cancellationToken);
            _renewal = _turn is null ? Task.CompletedTask : RenewTurnAsync(_turn, _renewing.Token);
            _admitted.SetResult();
            return true;
        }
        catch (Exception e)
        {
            await request.Quota.SettleAsync(0); // nothing was saved or sent; given back before the request answers
            _admitted.SetException(e); // the request answers with its problem, and that is where it is logged
        }

        return false;
    }

    private async Task<string> IngressAsync(CancellationToken cancellationToken)
    {
        var userTokens = counter.CountTokens(request.Message);
        _budget.SetContext(counter.CountTokens(options.SystemPrompt) + userTokens);
        var message = new ChatMessageRecord
        {
            Id = ChatMessageRecord.NewId(time.GetUtcNow()),
            Role = "user",
            Content = request.Message,
            Tokens = userTokens,
            CreatedAt = time.GetUtcNow(),
        };
        await PersistAsync(message, cancellationToken, turn: _turn is null ? null : TurnChange.Claim(_turn));
        Emit(BudgetPhases.Ingress);
        return message.Id;
    }

    /// <summary>System prompt, summary of older history, recent history, the new message; summarized first when too big.</summary>
    private async Task<ChatHistory> RetrievalAsync(CancellationToken cancellationToken)
    {
        var conversation = Conversation();
        var context = BuildContext(_session.Summary, conversation);
        var contextTokens = Count(context);
        _budget.SetContext(contextTokens);
        _budget.EvaluateContext(contextTokens);
        Emit(BudgetPhases.Retrieval);
        if (!_budget.Current.ShouldSummarize)
        {
            return context;
        }

        var keep = Math.Max(0, options.KeepRecentMessages);
        var older = conversation.Take(Math.Max(0, conversation.Count - keep)).ToList();
        if (older.Count == 0)
        {
            return context; // nothing old enough to compact: the newest turns are kept verbatim
        }

        var summarize = new ChatHistory($"{OfflineChatCompletionService.SummarizeInstruction}. Keep names, numbers, decisions and open questions; be brief.");
        if (_session.Summary is { } previous)
        {
            summarize.AddSystemMessage($"Earlier summary: {previous}");
        }

        foreach (var message in older)
        {
            summarize.AddMessage(message.Role == "user" ? AuthorRole.User : AuthorRole.Assistant, message.Content);
        }

        var settings = new OpenAIPromptExecutionSettings { MaxTokens = Math.Min(512, request.Model.Options.MaxOutputTokens) };
        var summarizationInput = Count(summarize);
        if (summarizationInput + settings.MaxTokens.Value >= _budget.Spendable)
        {
            // Not affordable within this message's budget: the context goes as it is, if it fits.
            return context;
        }

        _modelCalls++;
        ChatMessageContent? reply;
        int summaryTokens;
        using (var call = ModelCallSpan.Start(request.Model, settings.MaxTokens.Value, streaming: false, capture.Enabled, summarize, metrics))
        {
            try
            {
                reply = (await model.GetChatMessageContentsAsync(summarize, settings, kernel: null, cancellationToken)).FirstOrDefault();
            }
            catch (Exception e)
            {
                call.Fail(e);
                if (cancellationToken.IsCancellationRequested || _budget.IsExhausted)
                {
                    throw;
                }

                // The history still fits this message's budget, so a summary that failed (refused, timed out) costs the
                // turn nothing it needed: it goes on with the history whole, and a later turn summarizes.
                logger.LogWarning(e, "Summarizing the history of session {SessionId} failed ({Failure}); the turn goes on without it",
                    _session.Id, ModelFailure.Describe(e));
                return context;
            }

            call.OnChunk(ModelCallSpan.ResponseModelOf(reply?.InnerContent, reply?.ModelId), reply?.Metadata);
            summaryTokens = counter.CountTokens(reply?.Content?.Trim() ?? "");
            var usage = RecordProviderUsage(reply?.Metadata);
            call.SetUsage(usage?.Prompt ?? summarizationInput, usage?.Completion ?? summaryTokens, usage is not null);
            call.SetOutput(reply?.Content ?? "", []);
        }

        var summary = StoredTextSize.Shorten(reply?.Content?.Trim() ?? "", MaxSummaryBytes);
        var throughId = older[^1].Id;
        await store.SetSummaryAsync(_session.Id, summary, throughId, time.GetUtcNow(), cancellationToken);
        _session = _session with { Summary = summary, SummaryThroughMessageId = throughId };

        var compacted = BuildContext(summary, conversation.Skip(older.Count).ToList());
        var compactedTokens = Count(compacted);
        _completionBase += summaryTokens;
        events.Write(ChatEventTypes.Summarized, new SummarizedEvent(older.Count, conversation.Count - older.Count, contextTokens, compactedTokens, summaryTokens, throughId));
        metrics.Summarizations.Add(1, new KeyValuePair<string, object?>(Contracts.Telemetry.GenAiAttributes.RequestModel, ModelCallSpan.RequestModelOf(request.Model)));
        _span?.OnSummarized(older.Count, contextTokens, compactedTokens);

        // The summarization call was spent too: its input counts as prompt, its summary as completion.
        _budget.AddSentInput(summarizationInput);
        _budget.SetContext(compactedTokens);
        _budget.SetCompletion(_completionBase);
        _budget.EvaluateContext(compactedTokens);
        Emit(BudgetPhases.Retrieval);
        return compacted;
    }

    /// <summary>
    /// The conversation no longer fits this message's budget, and summarizing it would not either: the answering call
    /// is not made, so its context is not spent, and the user learns what to change.
    /// </summary>
    private ErrorEvent ContextOverBudget()
    {
        var (contextTokens, spendable) = (_budget.ContextTokens, _budget.Spendable);
        _budget.SetContext(0);
        logger.LogInformation("A turn of session {SessionId} was not answered: its context of {Context} tokens exceeds the {Spendable} its budget leaves",
            _session.Id, contextTokens, spendable);
        return new ErrorEvent("budget_too_small",
            $"This conversation's context is {contextTokens} tokens and this message's budget leaves {spendable}; send it with a larger budget_max (at most {options.MaxBudgetPerRequest}) or start a new session.");
    }

    private async Task<string> GenerateAsync(ChatHistory context, CancellationToken cancellationToken)
    {
        var kernel = new Kernel();
        kernel.Plugins.AddFromObject(new ChatTools(EarlierMessagesAsync, time), ChatTools.PluginName);
        kernel.FunctionInvocationFilters.Add(new ToolInvocationFilter(this));

        for (var round = 0; round <= options.MaxToolRounds; round++)
        {
            if (_budget.IsExhausted)
            {
                return FinishReasons.BudgetExhausted;
            }

            var settings = new OpenAIPromptExecutionSettings
            {
                MaxTokens = Math.Max(1, Math.Min(request.Model.Options.MaxOutputTokens, _budget.Current.BudgetRemaining)),
                // Tools are offered until the last round, then the model must answer. Invoked by us, not the
                // connector, so every call passes through the filter and the budget.
                FunctionChoiceBehavior = round < options.MaxToolRounds ? FunctionChoiceBehavior.Auto(autoInvoke: false) : null,
            };
            var calls = await StreamModelAsync(context, settings, kernel, cancellationToken);
            if (_answerSize.Full)
            {
                logger.LogWarning("An answer of session {SessionId} by {Model} stopped at {Bytes} bytes, the most Chat:MaxAnswerBytes ({MaxBytes}) lets the store keep",
                    _session.Id, request.Model.Name, _answerSize.Bytes, _answerSize.MaxBytes);
                return FinishReasons.SizeLimit;
            }

            if (_budget.IsExhausted)
            {
                return FinishReasons.BudgetExhausted;
            }

            if (calls.Count == 0)
            {
                return _providerFinish == "length" ? FinishReasons.Length : FinishReasons.Stop;
            }

            // The next call sends this call's context again, with the tool calls and their results.
            _budget.ContextSentAgain();
            var callMessage = new ChatMessageContent(AuthorRole.Assistant, content: null);
            foreach (var call in calls)
            {
                callMessage.Items.Add(call);
            }

            context.Add(callMessage);
            foreach (var call in calls)
            {
                // The filter's execute_tool span takes the call id from here: SK's filter context does not carry it.
                CurrentToolCallId = call.Id;
                var result = RefusalOf(call, kernel) is { } refusal
                    ? await RefuseToolCallAsync(call, refusal)
                    : await call.InvokeAsync(kernel, cancellationToken);
                context.Add(result.ToChatMessage());
            }
        }

        return FinishReasons.Stop;
    }

    /// <summary>
    /// Why a tool call cannot be invoked, in words the model can act on, or null when it can: models invent tools and
    /// cut arguments short, and either one ended the whole turn as a model error.
    /// </summary>
    private static string? RefusalOf(FunctionCallContent call, Kernel kernel)
    {
        if (!kernel.Plugins.TryGetFunction(call.PluginName, call.FunctionName, out _))
        {
            var named = call.PluginName is null ? call.FunctionName : $"{call.PluginName}-{call.FunctionName}";
            var tools = kernel.Plugins.SelectMany(plugin => plugin.Select(function => $"{plugin.Name}-{function.Name}"));
            return $"error: there is no tool named '{named}'; the tools are {string.Join(", ", tools)}.";
        }

        return call.Exception is null ? null
            : $"error: the arguments are not valid JSON ({call.Exception.GetBaseException().Message}); call the tool again with a JSON object.";
    }

    /// <summary>A call that cannot be invoked is tracked as a failed one (events, tool message, warehouse row), and its result tells the model why.</summary>
    private async Task<FunctionResultContent> RefuseToolCallAsync(FunctionCallContent call, string refusal)
    {
        var arguments = call.Arguments?.ToDictionary(a => a.Key, a => a.Value?.ToString()) ?? [];
        var errorType = call.Exception is null ? "ToolNotFound" : "InvalidToolArguments";
        using var span = ToolSpan.Start(this, call.FunctionName, arguments);
        await OnToolStartAsync(call.FunctionName, arguments);
        span.Fail(errorType, refusal);
        span.End("error", refusal);
        await OnToolEndAsync(call.FunctionName, arguments, refusal, TimeSpan.Zero, "error", errorType);
        return new FunctionResultContent(call, refusal);
    }

    /// <summary>One streamed model call: text goes out as deltas and is counted incrementally; tool calls are collected.</summary>
    private async Task<IReadOnlyList<FunctionCallContent>> StreamModelAsync(ChatHistory context, PromptExecutionSettings settings, Kernel kernel, CancellationToken cancellationToken)
    {
        var calls = new FunctionCallContentBuilder();
        _live = new AnswerTokenCounter(counter, _answer, time);
        _modelCalls++;
        using var span = ModelCallSpan.Start(request.Model, (settings as OpenAIPromptExecutionSettings)?.MaxTokens ?? 0, streaming: true, capture.Enabled, context, metrics);
        var answerStart = _answer.Length;
        try
        {
            await foreach (var update in model.GetStreamingChatMessageContentsAsync(context, settings, kernel, cancellationToken))
            {
                span.OnChunk(ModelCallSpan.ResponseModelOf(update.InnerContent, update.ModelId), update.Metadata);
                calls.Append(update);
                if (RecordProviderUsage(update.Metadata) is { } usage)
                {
                    span.SetUsage(usage.Prompt, usage.Completion, fromProvider: true);
                }

                if (string.IsNullOrEmpty(update.Content))
                {
                    continue;
                }

                // Only what can still be stored is taken: the text sent is the text kept, cut at a scalar boundary.
                var fits = _answerSize.Take(update.Content);
                var text = fits == update.Content.Length ? update.Content : update.Content[..fits];
                if (text.Length > 0 && _live.Add(text))
                {
                    events.Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent(text));
                }

                if (_answerSize.Full)
                {
                    break; // as for the budget: leaving the loop disposes the provider's stream, and the count is made below
                }

                // Count exactly only when the estimate says a checkpoint is due ("about every 50 tokens": one or
                // two counts per checkpoint), or when the sound upper bound says the budget may be reached, so a
                // budget stops the answer at the very delta that exhausts it; inside a long unbroken piece, once a
                // held batch is complete (AnswerTokenCounter).
                if (_live.CountDue(_nextCheckpoint - _completionBase, CompletionLimit))
                {
                    CountLive();
                    if (_budget.IsExhausted)
                    {
                        break; // leaving the loop disposes the provider's stream: generation stops here
                    }
                }
            }
        }
        catch (Exception e)
        {
            span.Fail(e);
            throw;
        }
        finally
        {
            // Held text is counted and shown, or dropped past the budget, whatever ended the call.
            var callCompletion = CountLive(checkpoint: false); // the call's end reports at the tool or finalize phase
            if (_live.Cut)
            {
                _answerSize.Retake(_answer.AsSpan());
            }

            _answerTokens = answerStart == 0 ? callCompletion : _answer.Length > answerStart ? null : _answerTokens;
            _completionBase += callCompletion;
            _budget.SetCompletion(_completionBase);
            _live = null;
            // A call cut short counts what it counted; one that failed before its first chunk spent nothing, so its
            // context is not charged to the budget or the user's quota either.
            if (span.FailedBeforeFirstChunk)
            {
                _budget.SetContext(0);
            }
            else if (!span.HasUsage)
            {
                span.SetUsage(Count(context), callCompletion, fromProvider: false);
            }
        }

        var built = calls.Build();
        span.SetOutput(_answer.AsSpan(answerStart), built);
        return built;
    }

    /// <summary>Completion tokens the live call may reach before the budget is exhausted.</summary>
    private int CompletionLimit => _budget.Current.BudgetMax - _budget.Current.PromptTokens - _completionBase;

    /// <summary>Counts the live call exactly, shows the held text the count covers, and emits a checkpoint when one is due.</summary>
    private int CountLive(bool checkpoint = true)
    {
        var tokens = _live!.Count(CompletionLimit, out var released);
        if (released.Length > 0)
        {
            events.Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent(released.ToString()));
        }

        _budget.SetCompletion(_completionBase + tokens);
        if (checkpoint && _budget.Current.CompletionTokens >= _nextCheckpoint)
        {
            Emit(BudgetPhases.ModelStream);
            _nextCheckpoint = _budget.Current.CompletionTokens + options.CheckpointTokens;
        }

        return tokens;
    }

    /// <summary>The id of the tool call being invoked, for its execute_tool span.</summary>
    public string? CurrentToolCallId { get; private set; }

    public bool CaptureContent => capture.Enabled;

    public Task OnToolStartAsync(string name, IReadOnlyDictionary<string, string?> arguments)
    {
        // The model wrote the call: its name and arguments are completion tokens, and go back with the next call.
        var callTokens = counter.CountTokens(name) + counter.CountTokens(JsonSerializer.Serialize(arguments));
        _completionBase += callTokens;
        _budget.SetCompletion(_completionBase);
        _budget.AddToContext(callTokens);
        events.Write(ChatEventTypes.ToolStart, new ToolStartEvent(name, arguments));
        Emit(BudgetPhases.Tool);
        return Task.CompletedTask;
    }

    public async Task OnToolEndAsync(string name, IReadOnlyDictionary<string, string?> arguments, string result, TimeSpan duration, string status, string? errorType = null)
    {
        // The result goes back to the model with the next call.
        var resultTokens = counter.CountTokens(result);
        _budget.AddToContext(resultTokens);
        // A brief wait: the result was not shown yet, and what the answer streamed so far is saved at finalize, with the long one.
        // Its tokens are what the model is sent: the whole result, even when only its start is stored.
        await PersistAsync(new ChatMessageRecord
        {
            Id = ChatMessageRecord.NewId(time.GetUtcNow()),
            Role = "tool",
            Content = StoredTextSize.Shorten(result, MaxToolTextBytes),
            Tokens = resultTokens,
            CreatedAt = time.GetUtcNow(),
            ToolName = name,
            ToolArguments = StoredTextSize.Shorten(JsonSerializer.Serialize(arguments), MaxToolTextBytes),
            ToolResultBytes = Encoding.UTF8.GetByteCount(result),
            ToolStatus = status,
            ToolErrorType = errorType,
            DurationMs = Math.Round(duration.TotalMilliseconds, 3),
        }, CancellationToken.None);
        events.Write(ChatEventTypes.ToolEnd, new ToolEndEvent(name, arguments, result.Shorten(200),
            Math.Round(duration.TotalMilliseconds, 3), status));
        Emit(BudgetPhases.Tool);
    }

    private async Task<ErrorEvent?> FinalizeAsync(string userMessageId, string finishReason, ErrorEvent? error)
    {
        ReconciliationEvent? reconciliation = null;
        // Only a complete picture replaces the count: a call cut short (budget, disconnect) never sends its usage.
        if (_modelCalls > 0 && _modelCallsReported == _modelCalls && error is null)
        {
            var counted = _budget.Current.TotalTokens;
            _budget.Reconcile(_providerPrompt, _providerCompletion);
            reconciliation = new ReconciliationEvent(counted, _budget.Current.TotalTokens, _budget.ReconciliationDelta ?? 0);
            if (reconciliation.Delta != 0)
            {
                logger.LogInformation("Provider usage differs from the count by {Delta} tokens (counted {Counted}, provider {Provider}) for {Model}",
                    reconciliation.Delta, counted, reconciliation.ProviderTotal, request.Model.Name);
            }
        }

        // Before `done`: a client that sends its next message on `done` finds this run's spending counted. Settled
        // beside the answer's commit, not after it: the spending is known now, and neither write waits on the other.
        var settled = request.Quota.SettleAsync(_budget.Current.TotalTokens);
        await StopRenewingAsync();
        string? assistantMessageId = null;
        try
        {
            // Persisted even when the client left or the budget ran out: what was said is kept.
            if (userMessageId.Length > 0 && (_answer.Length > 0 || error is null))
            {
                var message = new ChatMessageRecord
                {
                    Id = ChatMessageRecord.NewId(time.GetUtcNow()),
                    Role = "assistant",
                    Content = _answer.ToString(),
                    // Text from several calls is counted as one: pieces can merge across the join.
                    Tokens = _answerTokens ?? counter.CountTokens(_answer.AsSpan()),
                    CreatedAt = time.GetUtcNow(),
                    Model = request.Model.Name,
                    FinishReason = finishReason,
                    ReconciliationDelta = reconciliation?.Delta,
                };
                // The run's usage goes in the answer's commit: one round trip fewer before `done`. The answer was
                // streamed and charged already: its save outlasts a longer store outage than a request would wait for.
                // The session's hold is given up in it too: a client that sends on `done` finds the session free on
                // every instance.
                await PersistAsync(message, CancellationToken.None, Usage(_persistedMessages + 1), SaveWait.Long, _turn is null ? null : TurnChange.GiveUp(_turn));
                assistantMessageId = message.Id;
            }
            else if (_persistedMessages > 0)
            {
                await store.AddUsageAsync(_session.Id, Usage(_persistedMessages), _turn, CancellationToken.None);
            }
        }
        catch (ChatStoreUnavailableException e)
        {
            logger.LogWarning(e, "Could not persist the end of a run of session {SessionId}", _session.Id);
            error ??= new ErrorEvent("store_unavailable", "The answer could not be saved; the conversation store is unavailable.");
            finishReason = FinishReasons.Error;
        }
        catch (Exception e)
        {
            // Refused rather than unreachable (the session deleted meanwhile, a permission): the stream still ends with
            // finalize and an error, not cut off, so the page does not resume a finished stream.
            logger.LogError(e, "The store refused the end of a run of session {SessionId}", _session.Id);
            error ??= new ErrorEvent("store_error", "The answer could not be saved; the conversation store refused it.");
            finishReason = FinishReasons.Error;
        }

        await settled;
        Emit(BudgetPhases.Finalize);
        if (error is not null)
        {
            events.Write(ChatEventTypes.Error, error);
        }
        else
        {
            events.Write(ChatEventTypes.Done, new DoneEvent(_session.Id, userMessageId, assistantMessageId, finishReason, _budget.Current, reconciliation));
        }

        return error;
    }

    /// <summary>
    /// Keeps the session held while the run goes on. A renewal that fails (the store down for a moment) is tried again
    /// at the next third: the hold lasts its whole lifetime from the last one that worked.
    /// </summary>
    private async Task RenewTurnAsync(TurnLease turn, CancellationToken stop)
    {
        try
        {
            while (!turn.Lost)
            {
                await Task.Delay(turn.Lifetime / 3, time, stop);
                try
                {
                    await store.RenewTurnAsync(_session.Id, turn, stop);
                }
                catch (Exception e) when (!stop.IsCancellationRequested)
                {
                    logger.LogWarning(e, "Could not renew the turn of session {SessionId}; trying again in {Seconds} s", _session.Id, (turn.Lifetime / 3).TotalSeconds);
                }
            }

            // Not stopped: the answer is streaming to its reader and is saved as usual; a second turn may run beside it.
            logger.LogWarning("The turn of session {SessionId} was taken over by another after its hold expired unrenewed", _session.Id);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Before the last commit, which gives the hold up; idempotent.</summary>
    private async Task StopRenewingAsync()
    {
        await _renewing.CancelAsync();
        await _renewal;
    }

    private RunUsage Usage(int messages) => new(_budget.Current.PromptTokens, _budget.Current.CompletionTokens, messages, time.GetUtcNow());

    private async Task PersistAsync(ChatMessageRecord message, CancellationToken cancellationToken, RunUsage? usage = null, SaveWait wait = SaveWait.Brief,
        TurnChange? turn = null)
    {
        var records = outbox.RecordsFor(_session, message, _budget.Current, _persistedMessages);
        var newSession = request.NewSession && _persistedMessages == 0 ? _session : null;
        await store.AppendMessageAsync(_session.Id, message, records, usage, newSession, turn, wait, cancellationToken);
        _persistedMessages++;
        if (records.Count > 0)
        {
            outboxSignal.Notify();
        }
    }

    /// <summary>
    /// What a history search looks through: every message before this turn's. The turn itself read only those after
    /// the summary, so a summarized session is read from the store here, at each search, a page at a time.
    /// </summary>
    private async IAsyncEnumerable<ChatMessageRecord> EarlierMessagesAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (request.Session.SummaryThroughMessageId is null)
        {
            foreach (var message in request.History)
            {
                yield return message;
            }

            yield break;
        }

        // A summarized session can hold any number of messages of up to ~1 MB each: read a page at a time.
        await foreach (var message in store.ReadMessagesAsync(_session.Id, after: null, SearchPageSize, cancellationToken))
        {
            if (string.CompareOrdinal(message.Id, _userMessageId) >= 0)
            {
                yield break; // the message asking, and what followed it
            }

            yield return message;
        }
    }

    /// <summary>Earlier user and assistant messages not yet covered by the session's summary.</summary>
    private List<ChatMessageRecord> Conversation() => request.History
        .Where(m => m.Role is "user" or "assistant")
        .Where(m => _session.SummaryThroughMessageId is not { } through || string.CompareOrdinal(m.Id, through) > 0)
        .ToList();

    private ChatHistory BuildContext(string? summary, IReadOnlyList<ChatMessageRecord> conversation)
    {
        var context = new ChatHistory(options.SystemPrompt);
        if (!string.IsNullOrEmpty(summary))
        {
            context.AddSystemMessage($"Summary of the earlier conversation: {summary}");
        }

        foreach (var message in conversation)
        {
            context.AddMessage(message.Role == "user" ? AuthorRole.User : AuthorRole.Assistant, message.Content);
        }

        context.AddUserMessage(request.Message);
        return context;
    }

    private int Count(ChatHistory history) => PromptText.Count(counter, history);

    /// <summary>Adds a reported usage to the run's totals and returns it (null when this chunk reported none).</summary>
    private (int Prompt, int Completion)? RecordProviderUsage(IReadOnlyDictionary<string, object?>? metadata)
    {
        if (metadata is null)
        {
            return null;
        }

        if (metadata.TryGetValue("FinishReason", out var finish) && finish is not null)
        {
            _providerFinish = finish.ToString() switch
            {
                "Length" or "length" => "length",
                var other => other?.ToLowerInvariant(),
            };
        }

        switch (metadata.TryGetValue("Usage", out var usage) ? usage : null)
        {
            case ProviderUsage offline:
                return Add(offline.PromptTokens, offline.CompletionTokens);
            case OpenAI.Chat.ChatTokenUsage openAi:
                return Add(openAi.InputTokenCount, openAi.OutputTokenCount);
            default:
                return null;
        }

        (int, int) Add(int prompt, int completion)
        {
            _providerPrompt += prompt;
            _providerCompletion += completion;
            _modelCallsReported++;
            return (prompt, completion);
        }
    }

    private void Emit(string phase)
    {
        events.Write(ChatEventTypes.TokenCount, TokenCountEvent.From(_budget.Current, phase));
        _span?.OnBudget(_budget.Current, phase);
    }
}
