using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Budget;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using ChatStack.Tokenization;

namespace ChatStack.Tests.Chat;

/// <summary>The agent run against fakes of its seams: the store in memory, the offline model, a recording event writer.</summary>
public class AgentRunTests(ITestOutputHelper output)
{
    private static readonly ITokenCounter Counter = TokenCounterFactory.Default.ForEncoding("o200k_base");
    private readonly InMemoryChatSessionStore _store = new();
    private readonly RecordingWriter _events = new();

    [Fact]
    public async Task Past_the_context_share_older_history_is_summarized_before_the_model_call_keeping_the_newest_turns()
    {
        var history = ProseHistory(8);
        var model = new RecordingModel(new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 }));
        var run = Run(history, "And now?", model, budget: 5000, contextWindow: 600, keepRecent: 4);
        await run.ExecuteAsync(CancellationToken.None);

        var summarized = Assert.IsType<SummarizedEvent>(_events.Single(ChatEventTypes.Summarized));
        Assert.Equal(4, summarized.ReplacedMessages);
        Assert.Equal(4, summarized.KeptMessages);
        Assert.Equal(history[3].Id, summarized.ThroughMessageId);
        Assert.True(summarized.TokensAfter < summarized.TokensBefore);
        Assert.True(_events.Phases()[1] == BudgetPhases.Retrieval && _events.Phases()[2] == BudgetPhases.Retrieval);
        Assert.True(((TokenCountEvent)_events.TokenCounts()[1]).ShouldSummarize);

        // The answering call saw: system prompt, the summary, the four newest messages verbatim, the new message.
        var answering = model.Calls[^1];
        Assert.Equal(7, answering.Count);
        Assert.StartsWith("Summary of the earlier conversation:", answering[1].Content);
        Assert.Equal(history.Skip(4).Select(m => m.Content), answering.Skip(2).Take(4).Select(m => m.Content));
        Assert.Equal("And now?", answering[^1].Content);
        Assert.Equal(history[3].Id, (await _store.GetSessionAsync("s1", default))!.SummaryThroughMessageId);

        // Two calls billed (the summarization's input and the compacted context): the count agrees with the provider.
        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.NotNull(done.Reconciliation);
        Assert.Equal(0, done.Reconciliation.Delta);
    }

    [Fact]
    public async Task A_history_search_in_a_summarized_session_finds_what_the_summary_replaced_but_not_the_message_asking()
    {
        var history = Enumerable.Range(0, 6).Select(i => new ChatMessageRecord
        {
            Id = ChatMessageRecord.NewId(DateTimeOffset.UtcNow),
            Role = i % 2 == 0 ? "user" : "assistant",
            Content = i == 0 ? "My cat is called Miso." : $"Message {i} about nothing in particular.",
            CreatedAt = DateTimeOffset.UtcNow,
        }).ToList();
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });

        // The turn was given only the messages after the summary; the cat is in the summarized part.
        await Run(history, "Search the history for Miso.", model, budget: 4000, summarized: 4).ExecuteAsync(CancellationToken.None);
        var found = Assert.IsType<ToolEndEvent>(_events.Single(ChatEventTypes.ToolEnd));
        Assert.Equal("ok", found.Status);
        Assert.Contains("My cat is called Miso.", found.ResultSummary);

        // The message asking is already stored when the tool runs, and is not an earlier message.
        _events.All.Clear();
        await Run([], "Search the history for aardvark.", model, budget: 4000, summarized: 0, session: "s2", summaryThrough: history[3].Id).ExecuteAsync(CancellationToken.None);
        Assert.StartsWith("No earlier message mentions 'aardvark'", Assert.IsType<ToolEndEvent>(_events.Single(ChatEventTypes.ToolEnd)).ResultSummary);
    }

    [Fact]
    public async Task A_history_search_reads_a_long_summarized_session_a_page_at_a_time()
    {
        // Three pages and a bit of earlier messages; the cat is in the first, and the best hit is the newest mention.
        var start = DateTimeOffset.UtcNow.AddHours(-1);
        var history = Enumerable.Range(0, 2 * AgentRun.SearchPageSize + 7).Select(i => new ChatMessageRecord
        {
            Id = ChatMessageRecord.NewId(start.AddSeconds(i)),
            Role = i % 2 == 0 ? "user" : "assistant",
            Content = i switch
            {
                0 => "My cat is called Miso.",
                60 => "Miso the cat likes boxes.",
                _ => $"Message {i} about nothing in particular.",
            },
            CreatedAt = start.AddSeconds(i),
        }).ToList();
        var store = new PageRecordingStore(_store);
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });

        await Run(history, "Search the history for Miso.", model, budget: 4000, summarized: history.Count - 4, store: store).ExecuteAsync(CancellationToken.None);

        var found = Assert.IsType<ToolEndEvent>(_events.Single(ChatEventTypes.ToolEnd));
        Assert.Equal("ok", found.Status);
        Assert.StartsWith("[user", found.ResultSummary);
        Assert.Contains("Miso the cat likes boxes. | [user", found.ResultSummary);
        Assert.Contains("My cat is called Miso.", found.ResultSummary);
        // Never the whole session at once: three pages of at most SearchPageSize, the last one holding the message asking.
        Assert.Equal(0, store.WholeReads);
        Assert.Equal([AgentRun.SearchPageSize, AgentRun.SearchPageSize, AgentRun.SearchPageSize], store.PageLimits);
    }

    [Fact]
    public async Task An_exhausted_budget_stops_generation_and_keeps_and_counts_the_partial_answer()
    {
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });
        var run = Run([], "Write a long essay about budgets.", model, budget: 200);
        await run.ExecuteAsync(CancellationToken.None);

        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.Equal(FinishReasons.BudgetExhausted, done.FinishReason);
        var answer = (await _store.ListMessagesAsync("s1", default))[^1];
        Assert.Equal(FinishReasons.BudgetExhausted, answer.FinishReason);
        Assert.Equal(Counter.CountTokens(answer.Content), answer.Tokens);
        var deltas = string.Concat(_events.All.Where(e => e.Type == ChatEventTypes.MessageDelta).Select(e => ((MessageDeltaEvent)e.Data).Text));
        Assert.Equal(deltas, answer.Content);
        // Stopped at the first delta that reached the budget: one delta less would have been under it.
        var lastDelta = ((MessageDeltaEvent)_events.All.Last(e => e.Type == ChatEventTypes.MessageDelta).Data).Text;
        var beforeLastDelta = done.Usage.PromptTokens + Counter.CountTokens(deltas.AsSpan(0, deltas.Length - lastDelta.Length));
        Assert.True(beforeLastDelta < 200);
        Assert.True((await _store.GetSessionAsync("s1", default))!.TotalTokens > 0);
    }

    [Fact]
    public async Task A_long_unbroken_run_is_streamed_as_stored_counted_exactly_and_read_a_few_times_not_once_a_checkpoint()
    {
        // A model drawing a 30,000-character line: one o200k piece, which the incremental counter reads whole at each count.
        var text = "Here:\n" + new string('=', 30_000) + "\nDone.";
        var counter = new RecountingTokenCounter(TokenCounter.Create("o200k_base"));
        await Run([], "Draw a line.", new ChunkedModel(text, 8), budget: 100_000, counter: counter).ExecuteAsync(CancellationToken.None);

        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.Equal(FinishReasons.Stop, done.FinishReason);
        var answer = (await _store.ListMessagesAsync("s1", default))[^1];
        Assert.Equal(text, answer.Content);
        Assert.Equal(text, Streamed());
        Assert.Equal(Counter.CountTokens(text), answer.Tokens);
        Assert.Equal(answer.Tokens, done.Usage.CompletionTokens);
        // Checkpoints came inside the run too, each exact for the text streamed before it.
        var checkpoints = _events.All.Select((e, i) => (e, i)).Where(x => x.e.Data is TokenCountEvent { Phase: BudgetPhases.ModelStream }).ToList();
        Assert.True(checkpoints.Count >= 4, $"{checkpoints.Count} model_stream checkpoints");
        Assert.All(checkpoints, x => Assert.Equal(Counter.CountTokens(Streamed(x.i)), ((TokenCountEvent)x.e.Data).Completion));
        // Linear: about five reads of the run. A count at each checkpoint read it over and over (326 characters per character).
        Assert.InRange((double)counter.Characters / text.Length, 1, 8);
    }

    [Theory]
    [InlineData(300)]
    [InlineData(700)]
    public async Task A_budget_reached_inside_a_long_run_stops_at_the_delta_that_reaches_it_and_keeps_only_what_was_streamed(int budget)
    {
        var text = "Here:\n" + new string('=', 60_000);
        var counter = new RecountingTokenCounter(TokenCounter.Create("o200k_base"));
        await Run([], "Draw a line.", new ChunkedModel(text, 8), budget, counter: counter).ExecuteAsync(CancellationToken.None);

        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.Equal(FinishReasons.BudgetExhausted, done.FinishReason);
        var answer = (await _store.ListMessagesAsync("s1", default))[^1];
        Assert.Equal(Streamed(), answer.Content);
        Assert.StartsWith(answer.Content, text);
        Assert.Equal(Counter.CountTokens(answer.Content), answer.Tokens);
        Assert.Equal(answer.Tokens, done.Usage.CompletionTokens);
        // At a model delta's end, the first whose count reaches the budget: one delta less stays under it.
        Assert.Equal(0, answer.Content.Length % 8);
        Assert.True(done.Usage.TotalTokens >= budget);
        Assert.True(done.Usage.PromptTokens + Counter.CountTokens(answer.Content.AsSpan(0, answer.Content.Length - 8)) < budget);
        // A count at every delta once the sound bound met the budget read the run ~kept/16 times over.
        Assert.InRange((double)counter.Characters / answer.Content.Length, 1, 24);
    }

    [Fact]
    public async Task A_failing_tool_becomes_an_error_result_and_the_answer_still_comes()
    {
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });
        var run = Run([], "What is 1 / 0 exactly?", model, budget: 4000);
        await run.ExecuteAsync(CancellationToken.None);

        var end = Assert.IsType<ToolEndEvent>(_events.Single(ChatEventTypes.ToolEnd));
        Assert.Equal("error", end.Status);
        Assert.StartsWith("error:", end.ResultSummary);
        Assert.Equal(FinishReasons.Stop, Assert.IsType<DoneEvent>(_events.All[^1].Data).FinishReason);
        Assert.Equal(["user", "tool", "assistant"], (await _store.ListMessagesAsync("s1", default)).Select(m => m.Role));
    }

    [Fact]
    public async Task An_answer_written_across_a_tool_round_trip_is_counted_as_one_text()
    {
        // "I don" + tool call, then "'t know. ..." after it: "don't" is one piece of the saved answer, so the
        // answer's count is not the sum of the two calls' counts.
        var model = new PrefixedModel(new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 }), ["I don", "'t know. "]);
        var run = Run([], "What is 1 / 0 exactly?", model, budget: 4000);
        await run.ExecuteAsync(CancellationToken.None);

        var answer = (await _store.ListMessagesAsync("s1", default))[^1];
        Assert.StartsWith("I don't know. ", answer.Content);
        Assert.NotEqual(Counter.CountTokens("I don") + Counter.CountTokens(answer.Content.AsSpan(5)), Counter.CountTokens(answer.Content));
        Assert.Equal(Counter.CountTokens(answer.Content), answer.Tokens);
    }

    [Fact]
    public async Task A_cancelled_run_still_finalizes_saves_and_counts()
    {
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 5 });
        var run = Run([], "Write a long essay about cancellations.", model, budget: 8000);
        using var cancel = new CancellationTokenSource();
        _events.OnWrite = e =>
        {
            if (e.Type == ChatEventTypes.MessageDelta && _events.All.Count(x => x.Type == ChatEventTypes.MessageDelta) == 10)
            {
                cancel.Cancel();
            }
        };
        await run.ExecuteAsync(cancel.Token);

        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.Equal(FinishReasons.Cancelled, done.FinishReason);
        Assert.Equal(BudgetPhases.Finalize, _events.Phases()[^1]);
        var answer = (await _store.ListMessagesAsync("s1", default))[^1];
        Assert.Equal("assistant", answer.Role);
        Assert.NotEmpty(answer.Content);
        Assert.Equal(done.Usage.PromptTokens + done.Usage.CompletionTokens, (await _store.GetSessionAsync("s1", default))!.TotalTokens);
    }

    [Fact]
    public async Task Past_half_the_budget_older_history_is_summarized_though_the_context_window_is_far()
    {
        var history = ProseHistory(8, repeat: 30);
        var context = history.Sum(m => Counter.CountTokens(m.Content));
        var model = new RecordingModel(new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 }));
        var budget = context * 3 / 2;

        await Run(history, "And now?", model, budget: budget, contextWindow: 128_000, keepRecent: 4).ExecuteAsync(CancellationToken.None);

        var retrieval = (TokenCountEvent)_events.TokenCounts()[1];
        Assert.Equal(BudgetPhases.Retrieval, retrieval.Phase);
        Assert.True(retrieval.ShouldSummarize, $"context {retrieval.Prompt} of a budget of {budget}");
        var summarized = Assert.IsType<SummarizedEvent>(_events.Single(ChatEventTypes.Summarized));
        Assert.Equal(4, summarized.ReplacedMessages);
        Assert.True(summarized.TokensAfter * 2 <= budget, $"{summarized.TokensAfter} tokens after summarizing, budget {budget}");
        Assert.Equal(2, model.Calls.Count);
        Assert.Equal(FinishReasons.Stop, Assert.IsType<DoneEvent>(_events.All[^1].Data).FinishReason);
        Assert.Equal(history[3].Id, (await _store.GetSessionAsync("s1", default))!.SummaryThroughMessageId);
    }

    [Theory]
    [InlineData(false)] // the provider's 503
    [InlineData(true)] // HttpClient's timeout, a TaskCanceledException though nobody cancelled the turn
    public async Task A_summary_that_fails_while_the_history_still_fits_leaves_the_turn_to_answer_with_it_whole(bool timeout)
    {
        var history = ProseHistory(8, repeat: 30);
        var context = history.Sum(m => Counter.CountTokens(m.Content));
        Exception failure = timeout
            ? new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout of 100 seconds elapsing.", new TimeoutException())
            : new HttpOperationException(System.Net.HttpStatusCode.ServiceUnavailable, "overloaded", "The provider is overloaded.", null);
        var model = new RecordingModel(new FailingSummaryModel(new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 }), failure));

        await Run(history, "And now?", model, budget: context * 3 / 2, keepRecent: 4).ExecuteAsync(CancellationToken.None);

        Assert.True(((TokenCountEvent)_events.TokenCounts()[1]).ShouldSummarize);
        Assert.DoesNotContain(_events.All, e => e.Type == ChatEventTypes.Summarized);
        Assert.Equal(2, model.Calls.Count); // the summarization that failed, then the answer with every message
        Assert.Equal(history.Select(m => m.Content), model.Calls[1].Skip(1).Take(8).Select(m => m.Content));
        var done = Assert.IsType<DoneEvent>(_events.All[^1].Data);
        Assert.Equal(FinishReasons.Stop, done.FinishReason);
        Assert.Null((await _store.GetSessionAsync("s1", default))!.SummaryThroughMessageId);
        Assert.Equal("assistant", (await _store.ListMessagesAsync("s1", default))[^1].Role);
    }

    [Theory]
    [InlineData(128_000)] // far from the context share: no summarizing
    [InlineData(600)] // past it, but summarizing the older half would cost more than the budget leaves
    public async Task A_conversation_grown_past_the_budget_ends_the_turn_with_an_error_and_spends_nothing(int contextWindow)
    {
        var history = ProseHistory(8);
        var older = history.Take(4).Sum(m => Counter.CountTokens(m.Content));
        var model = new RecordingModel(new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 }));

        await Run(history, "And now?", model, budget: older + 200, contextWindow: contextWindow, keepRecent: 4).ExecuteAsync(CancellationToken.None);

        Assert.Empty(model.Calls);
        var error = Assert.IsType<ErrorEvent>(_events.All[^1].Data);
        Assert.Equal("budget_too_small", error.Code);
        Assert.Contains($"this message's budget leaves {older + 200}", error.Message);
        var finalize = (TokenCountEvent)_events.TokenCounts()[^1];
        Assert.Equal((BudgetPhases.Finalize, 0, older + 200), (finalize.Phase, finalize.Total, finalize.Remaining));
        Assert.Equal(0, (await _store.GetSessionAsync("s1", default))!.TotalTokens);
        Assert.Equal("user", (await _store.ListMessagesAsync("s1", default))[^1].Role);
    }

    [Fact]
    public async Task A_store_that_refuses_the_answer_ends_the_stream_with_finalize_and_an_error()
    {
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });

        await Run([], "Hello there.", model, budget: 4000, store: new RefusingAnswerStore(_store)).ExecuteAsync(CancellationToken.None);

        Assert.Equal(BudgetPhases.Finalize, _events.Phases()[^1]);
        var error = Assert.IsType<ErrorEvent>(_events.All[^1].Data);
        Assert.Equal("store_error", error.Code);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_tool_error_reaches_traces_and_the_warehouse_as_text_only_with_content_capture_on(bool capture)
    {
        // The calculator's error quotes the expression the model wrote from the user's words.
        var spans = new List<System.Diagnostics.Activity>();
        using var test = new System.Diagnostics.ActivitySource("tool-error-test");
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name is "tool-error-test" or ChatStack.Contracts.Telemetry.ChatStackTelemetry.ChatApi,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = span => { lock (spans) { spans.Add(span); } },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var store = new RecordingOutboxStore(_store);
        var model = new OfflineChatCompletionService(Counter, new OfflineModelOptions { DeltaDelayMs = 0 });

        using (var root = test.StartActivity("turn"))
        {
            await Run([], "What is 1 / 0 exactly?", model, budget: 4000, store: store, capture: capture).ExecuteAsync(CancellationToken.None);
        }

        var record = Assert.Single(store.Records, r => r.Attributes[ChatStack.Contracts.Events.ChatEventMessages.EventTypeAttribute] == "tool_invocation");
        var invocation = System.Text.Json.JsonSerializer.Deserialize<ChatStack.Contracts.Events.ToolInvocation>(record.Data)!;
        var traceId = spans.Single(s => s.DisplayName == "turn").TraceId;
        var tool = spans.Single(s => s.TraceId == traceId && s.DisplayName == "execute_tool calculate");
        Assert.Equal("error", invocation.Status);
        Assert.Equal(System.Diagnostics.ActivityStatusCode.Error, tool.Status);
        if (capture)
        {
            Assert.Equal("error: '1 / 0' has no finite value.", invocation.Error);
            Assert.Equal("'1 / 0' has no finite value.", tool.StatusDescription);
        }
        else
        {
            Assert.Equal(nameof(ArithmeticException), invocation.Error);
            Assert.DoesNotContain("1 / 0", System.Text.Encoding.UTF8.GetString(record.Data));
            Assert.DoesNotContain("1 / 0", tool.StatusDescription ?? "");
        }
    }

    /// <summary>Alternating user and assistant messages of a few hundred tokens each.</summary>
    private static List<ChatMessageRecord> ProseHistory(int count, int repeat = 3) => Enumerable.Range(0, count).Select(i => new ChatMessageRecord
    {
        Id = ChatMessageRecord.NewId(DateTimeOffset.UtcNow),
        Role = i % 2 == 0 ? "user" : "assistant",
        Content = $"Message {i}. " + TokenCountingTests.Sample("prose", repeat),
        CreatedAt = DateTimeOffset.UtcNow,
    }).ToList();

    /// <summary>
    /// A run in session <paramref name="session"/> holding <paramref name="history"/>; with <paramref name="summarized"/>
    /// (or <paramref name="summaryThrough"/>), the session has a summary through that message and the run is given
    /// only the messages after it, as the API does.
    /// </summary>
    private AgentRun Run(IReadOnlyList<ChatMessageRecord> history, string message, IChatCompletionService model, int budget, int contextWindow = 128_000, int keepRecent = 4,
        int summarized = 0, string session = "s1", string? summaryThrough = null, IChatSessionStore? store = null, bool? capture = null, ITokenCounter? counter = null,
        TimeProvider? time = null, TurnLease? turn = null)
    {
        summaryThrough ??= summarized > 0 ? history[summarized - 1].Id : null;
        var chatSession = new ChatSession
        {
            Id = session, UserId = "u1", Title = "t", Model = "m", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
            Summary = summaryThrough is null ? null : "Earlier, the user talked about pets.", SummaryThroughMessageId = summaryThrough,
        };
        foreach (var m in history)
        {
            _store.AppendMessageAsync(session, m, [], null, m == history[0] ? chatSession : null, null, SaveWait.Brief, CancellationToken.None);
        }

        var spec = new ModelSpec("m", new ModelOptions { Provider = ModelProvider.Offline, ContextWindow = contextWindow, Encoding = "o200k_base" });
        var options = new ChatOptions { KeepRecentMessages = keepRecent };
        var limits = new LimitOptions();
        // The memory store answers at once: the hold is there when the task returns.
        var quota = new UserLimiter(limits, new MemoryUserUsageStore(limits, TimeProvider.System), TimeProvider.System, NullLogger<UserLimiter>.Instance)
            .TryHoldAsync("u1", budget, needed: 1, CancellationToken.None).GetAwaiter().GetResult().Hold!;
        return new AgentRun(new ChatRunRequest("u1", chatSession, history.Skip(summarized).ToList(), message, spec, quota, NewSession: history.Count == 0, Turn: turn), _events, model, counter ?? Counter, store ?? _store,
            new ChatStack.ChatApi.DualWrite.ChatEventOutbox(new ChatStack.ChatApi.DualWrite.DualWriteOptions { DualWrite = capture is not null, CaptureContent = capture ?? false },
                new ChatStack.ChatApi.DualWrite.ContentHash("a-content-hash-key-of-sufficient-length-0123456789")),
            new ChatStack.ChatApi.DualWrite.OutboxSignal(), options, time ?? TimeProvider.System, NullLogger.Instance,
            new ChatStack.ChatApi.Telemetry.ChatMetrics(TelemetryCapture.MeterFactory), new ChatStack.ChatApi.Telemetry.ContentCaptureOptions(capture ?? false));
    }

    /// <summary>Keeps the outbox records written with each message.</summary>
    private sealed class RecordingOutboxStore(IChatSessionStore inner) : DelegatingStore(inner)
    {
        public List<ChatStack.ChatApi.DualWrite.OutboxRecord> Records { get; } = [];

        public override Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<ChatStack.ChatApi.DualWrite.OutboxRecord> outbox, RunUsage? usage,
            ChatSession? newSession, TurnChange? turn, SaveWait wait, CancellationToken cancellationToken)
        {
            Records.AddRange(outbox);
            return base.AppendMessageAsync(sessionId, message, outbox, usage, newSession, turn, wait, cancellationToken);
        }
    }

    /// <summary>Records how messages were read: whole, or the limit of each page.</summary>
    private sealed class PageRecordingStore(IChatSessionStore inner) : DelegatingStore(inner)
    {
        public int WholeReads { get; private set; }

        public List<int> PageLimits { get; } = [];

        public override Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken)
        {
            WholeReads++;
            return base.ListMessagesAsync(sessionId, cancellationToken);
        }

        public override Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken)
        {
            PageLimits.Add(limit);
            return base.ListMessagesAsync(sessionId, after, limit, cancellationToken);
        }
    }

    /// <summary>Refuses the answer's write as Firestore does a session deleted meanwhile (not as an outage).</summary>
    private sealed class RefusingAnswerStore(IChatSessionStore inner) : DelegatingStore(inner)
    {
        public override Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<ChatStack.ChatApi.DualWrite.OutboxRecord> outbox, RunUsage? usage,
            ChatSession? newSession, TurnChange? turn, SaveWait wait, CancellationToken cancellationToken) => message.Role == "assistant"
                ? throw new InvalidOperationException("FailedPrecondition: no entity to update")
                : base.AppendMessageAsync(sessionId, message, outbox, usage, newSession, turn, wait, cancellationToken);
    }

    /// <summary>Records what each commit did with the run's hold on its session, and its renewals, in order.</summary>
    private sealed class TurnRecordingStore(IChatSessionStore inner) : DelegatingStore(inner)
    {
        public List<(string Step, TurnLease Lease)> Steps { get; } = [];

        public override Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<ChatStack.ChatApi.DualWrite.OutboxRecord> outbox, RunUsage? usage,
            ChatSession? newSession, TurnChange? turn, SaveWait wait, CancellationToken cancellationToken)
        {
            lock (Steps)
            {
                Steps.Add((turn is { } change ? $"{(change.Release ? "give up" : "claim")} with {message.Role}" : $"{message.Role} only", turn?.Lease!));
            }

            return base.AppendMessageAsync(sessionId, message, outbox, usage, newSession, turn, wait, cancellationToken);
        }

        public override Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken)
        {
            lock (Steps)
            {
                Steps.Add(("renew", lease));
            }

            return base.RenewTurnAsync(sessionId, lease, cancellationToken);
        }
    }

    /// <summary>Passes every call to another store; a test overrides what it changes.</summary>
    private abstract class DelegatingStore(IChatSessionStore inner) : IChatSessionStore
    {
        public virtual Task AppendMessageAsync(string sessionId, ChatMessageRecord message, IReadOnlyList<ChatStack.ChatApi.DualWrite.OutboxRecord> outbox, RunUsage? usage,
            ChatSession? newSession, TurnChange? turn, SaveWait wait, CancellationToken cancellationToken) => inner.AppendMessageAsync(sessionId, message, outbox, usage, newSession, turn, wait, cancellationToken);

        public Task<ChatSession?> GetSessionAsync(string sessionId, CancellationToken cancellationToken) => inner.GetSessionAsync(sessionId, cancellationToken);

        public Task<ChatSessionPage> ListSessionsAsync(string userId, int limit, SessionCursor? after, CancellationToken cancellationToken) =>
            inner.ListSessionsAsync(userId, limit, after, cancellationToken);

        public virtual Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, CancellationToken cancellationToken) => inner.ListMessagesAsync(sessionId, cancellationToken);

        public virtual Task<IReadOnlyList<ChatMessageRecord>> ListMessagesAsync(string sessionId, string? after, int limit, CancellationToken cancellationToken) =>
            inner.ListMessagesAsync(sessionId, after, limit, cancellationToken);

        public Task AddUsageAsync(string sessionId, RunUsage usage, TurnLease? giveUp, CancellationToken cancellationToken) => inner.AddUsageAsync(sessionId, usage, giveUp, cancellationToken);

        public Task GiveUpTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.GiveUpTurnAsync(sessionId, lease, cancellationToken);

        public Task ClaimTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.ClaimTurnAsync(sessionId, lease, cancellationToken);

        public virtual Task RenewTurnAsync(string sessionId, TurnLease lease, CancellationToken cancellationToken) => inner.RenewTurnAsync(sessionId, lease, cancellationToken);

        public Task SetSummaryAsync(string sessionId, string summary, string throughMessageId, DateTimeOffset now, CancellationToken cancellationToken) =>
            inner.SetSummaryAsync(sessionId, summary, throughMessageId, now, cancellationToken);

        public Task<bool> RenameSessionAsync(string sessionId, string title, CancellationToken cancellationToken) => inner.RenameSessionAsync(sessionId, title, cancellationToken);

        public Task DeleteSessionAsync(string sessionId, CancellationToken cancellationToken) => inner.DeleteSessionAsync(sessionId, cancellationToken);
    }

    /// <summary>The text the run streamed, in <c>message_delta</c> events (before event <paramref name="before"/>, when given).</summary>
    [Fact]
    public async Task A_run_holds_its_session_from_the_users_message_to_its_answer_and_renews_the_hold_while_it_runs()
    {
        // Two minutes of a slow model (deltas 250 ms apart on a fake clock): a hold of 60 s is renewed every 20 s.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var store = new TurnRecordingStore(_store);
        await Run([], "Talk.", new ChunkedModel(string.Concat(Enumerable.Repeat("word ", 480)), 5, () => time.Advance(TimeSpan.FromMilliseconds(250))),
            budget: 100_000, store: store, time: time, turn: new TurnLease("s1-turn", TimeSpan.FromSeconds(60))).ExecuteAsync(CancellationToken.None);

        Assert.Equal(FinishReasons.Stop, Assert.IsType<DoneEvent>(_events.All[^1].Data).FinishReason);
        var steps = store.Steps.Select(s => s.Step).ToList();
        Assert.Equal("claim with user", steps[0]);
        Assert.Equal("give up with assistant", steps[^1]); // and no renewal after it
        Assert.InRange(steps.Count(s => s == "renew"), 4, 6); // 120 s of run: at 20, 40, …, 120 s
        Assert.Equal(steps.Count - 2, steps.Count(s => s == "renew"));
        Assert.Single(store.Steps.Select(s => s.Lease).Distinct()); // one hold throughout
    }

    [Fact]
    public async Task A_slow_models_long_run_is_shown_at_least_every_second_not_in_quarter_run_batches()
    {
        // 30,000 '=' in deltas of 64 characters (a token each), 250 ms apart: two minutes of one long line.
        var text = "Here:\n" + new string('=', 30_000) + "\nDone.";
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await Run([], "Draw a line.", new ChunkedModel(text, 64, () => time.Advance(TimeSpan.FromMilliseconds(250))), budget: 100_000, time: time)
            .ExecuteAsync(CancellationToken.None);

        Assert.Equal(FinishReasons.Stop, Assert.IsType<DoneEvent>(_events.All[^1].Data).FinishReason);
        Assert.Equal(text, Streamed());
        // Held deltas come out a second's worth at a time (4 deltas, 256 characters), where quarter-run batches grew
        // to thousands of characters, up to half a minute of the model's output.
        var deltas = _events.All.Where(e => e.Type == ChatEventTypes.MessageDelta).Select(e => ((MessageDeltaEvent)e.Data).Text.Length).ToList();
        output.WriteLine($"{deltas.Count} message_delta events, longest {deltas.Max()} characters");
        Assert.InRange(deltas.Max(), 64, 5 * 64);
    }

    private string Streamed(int before = int.MaxValue) => string.Concat(_events.All.Take(before)
        .Where(e => e.Type == ChatEventTypes.MessageDelta).Select(e => ((MessageDeltaEvent)e.Data).Text));

    /// <summary>A model that streams a fixed text in chunks of <paramref name="chunkChars"/> characters, and asks for no tool.</summary>
    private sealed class ChunkedModel(string text, int chunkChars, Action? beforeChunk = null) : IChatCompletionService
    {
        public IReadOnlyDictionary<string, object?> Attributes { get; } = new Dictionary<string, object?>();

        public Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null,
            Kernel? kernel = null, CancellationToken cancellationToken = default) => throw new NotSupportedException("This model only streams.");

        public async IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(ChatHistory chatHistory,
            PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            for (var start = 0; start < text.Length; start += chunkChars)
            {
                cancellationToken.ThrowIfCancellationRequested();
                beforeChunk?.Invoke();
                yield return new StreamingChatMessageContent(AuthorRole.Assistant, text.Substring(start, Math.Min(chunkChars, text.Length - start)));
            }

            await Task.CompletedTask;
        }
    }

    /// <summary>Writes a fixed text before each call's own output (call k gets prefixes[k]).</summary>
    private sealed class PrefixedModel(IChatCompletionService inner, string[] prefixes) : IChatCompletionService
    {
        private int _calls;

        public IReadOnlyDictionary<string, object?> Attributes => inner.Attributes;

        public Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null,
            Kernel? kernel = null, CancellationToken cancellationToken = default) => inner.GetChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken);

        public async IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(ChatHistory chatHistory,
            PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var call = _calls++;
            if (call < prefixes.Length)
            {
                yield return new StreamingChatMessageContent(AuthorRole.Assistant, prefixes[call]);
            }

            await foreach (var update in inner.GetStreamingChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken))
            {
                yield return update;
            }
        }
    }

    private sealed class RecordingWriter : IChatEventWriter
    {
        public List<(string Type, object Data)> All { get; } = [];

        public Action<(string Type, object Data)>? OnWrite { get; set; }

        public void Write(string type, object data)
        {
            All.Add((type, data));
            OnWrite?.Invoke((type, data));
        }

        public object Single(string type) => Assert.Single(All, e => e.Type == type).Data;

        public List<object> TokenCounts() => All.Where(e => e.Type == ChatEventTypes.TokenCount).Select(e => e.Data).ToList();

        public List<string> Phases() => TokenCounts().Cast<TokenCountEvent>().Select(t => t.Phase).ToList();
    }

    /// <summary>Keeps the history each model call was given.</summary>
    /// <summary>Answers as <paramref name="inner"/> does, but every summarization (the one call that is not streamed) fails with <paramref name="failure"/>.</summary>
    private sealed class FailingSummaryModel(IChatCompletionService inner, Exception failure) : IChatCompletionService
    {
        public IReadOnlyDictionary<string, object?> Attributes => inner.Attributes;

        public Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default) =>
            Task.FromException<IReadOnlyList<ChatMessageContent>>(failure);

        public IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default) =>
            inner.GetStreamingChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken);
    }

    private sealed class RecordingModel(IChatCompletionService inner) : IChatCompletionService
    {
        public List<ChatHistory> Calls { get; } = [];

        public IReadOnlyDictionary<string, object?> Attributes => inner.Attributes;

        public Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default)
        {
            Calls.Add([.. chatHistory]);
            return inner.GetChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken);
        }

        public IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default)
        {
            Calls.Add([.. chatHistory]);
            return inner.GetStreamingChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken);
        }
    }
}
