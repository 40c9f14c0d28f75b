using System.Globalization;
using System.Text.Json;
using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Budget;
using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Identity;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Apis;

internal static class ChatApis
{
    private const int SessionPageDefault = 20;
    private const int SessionPageMax = 100;
    private const int MessagePageMax = 500;

    // A page without limit: one answer cannot grow with the session (each message can be up to ~1 MB).
    private const int MessagePageDefault = 100;

    /// <summary>Longest title a user may give a session (titles taken from a first message are cut at 80).</summary>
    internal const int MaxTitleChars = 200;

    // Long enough for a stopped turn to save its partial answer (tens of ms); short enough to refuse a double send soon.
    private static readonly TimeSpan TurnWait = TimeSpan.FromSeconds(2);

    public static IEndpointRouteBuilder MapChatEndpoints(this IEndpointRouteBuilder app)
    {
        // Every endpoint here needs a token: a missing or refused one is a 401 problem (unauthorized, invalid-token).
        var api = app.MapGroup("/api").RequireAuthorization().WithTags("Chat").ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapPost("/chat", PostChat)
            .WithName("PostChat")
            .WithSummary("Send a message; the answer streams back as server-sent events (see README, Chat API protocol).")
            .Accepts<ChatRequest>("application/json")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status500InternalServerError) // store-error: Firestore refused the call for good (as in every endpoint that reads the store)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/chat/streams/{streamId}", ResumeStream)
            .WithName("ResumeChatStream")
            .WithSummary("Resume a stream in progress or just finished; send Last-Event-ID to skip what you have.")
            .WithDescription("Any instance takes a stream in progress: one that does not run it follows a copy the running instance makes (through Firestore, where turns are shared). A stream that has ended is copied whole by the instance that ran it, within the resume window.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapPost("/chat/streams/{streamId}/cancel", CancelStream)
            .WithName("CancelChatStream")
            .WithSummary("Stop the answer now: the model call is cancelled, and what was said so far is saved and counted (finish_reason cancelled).")
            .WithDescription("Any instance takes it: one that does not run the stream passes it on to the one that does (through Firestore, where turns are shared).")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/models", ListModels)
            .WithName("ListModels")
            .WithSummary("The models a chat may name as model, and the one it gets when it names none.")
            .Produces<ModelList>();

        api.MapGet("/sessions", ListSessions)
            .WithName("ListSessions")
            .WithSummary("Your sessions, most recently updated first; pass next_cursor back as cursor for the next page.")
            .Produces<ChatSessionPage>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/sessions/{sessionId}", GetSession)
            .WithName("GetSession")
            .WithSummary("The session: title, model, timestamps, token totals, message count and summary.")
            .Produces<ChatSession>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapDelete("/sessions/{sessionId}", DeleteSession)
            .WithName("DeleteSession")
            .WithSummary("Delete the session and its messages. The warehouse keeps its analytics events (counts and hashes rather than message text).")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapPatch("/sessions/{sessionId}", RenameSession)
            .WithName("RenameSession")
            .WithSummary("Rename the session: send {\"title\": \"…\"}. Its place in the session list does not change.")
            .Accepts<SessionUpdate>("application/json")
            .Produces<ChatSession>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/sessions/{sessionId}/messages", GetMessages)
            .WithName("GetSessionMessages")
            .WithSummary("The session's messages in order, a page at a time: limit (1-500, default 100) after a message id (default: from the first), with a Link header (rel=next) while more follow.")
            .Produces<IReadOnlyList<ChatMessageRecord>>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        return app;
    }

    /// <summary>Development only: a signed token for any user id, so a local frontend or curl can call the API.</summary>
    public static IEndpointRouteBuilder MapDevelopmentTokenApi(this IEndpointRouteBuilder app)
    {
        // The body is read by hand, as the chat's is, so a bad one is told what is wrong (binding says only "Bad request").
        app.MapPost("/api/dev/token", async (HttpContext context, ChatIdentityOptions identity, TimeProvider time, IOptions<ChatOptions> chatOptions) =>
            {
                var (body, problem) = await JsonBody.ReadAsync<DevTokenRequest>(context, chatOptions.Value.MaxRequestBytes, "a token request");
                return problem ?? (body?.UserId is { } userId && Ids.UserId().IsMatch(userId)
                    ? Results.Ok(new DevTokenResponse(IdentityExtensions.IssueDevelopmentToken(identity, userId, time), "Bearer", (int)(identity.DevTokenLifetimeMinutes * 60)))
                    : Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-user-id", "Invalid user id",
                        "user_id must be 1-128 characters: letters, digits, '.', '_', '@' or '-'.", field: "user_id"));
            })
            .WithSummary("Development only: a signed token for any user id.")
            .Accepts<DevTokenRequest>("application/json")
            .Produces<DevTokenResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .AllowAnonymous()
            .WithTags("Development")
            .WithName("IssueDevelopmentToken");
        return app;
    }

    private static async Task<IResult> PostChat(HttpContext context, ChatAgent agent, ModelCatalog models, ITokenCounterProvider counters,
        IChatSessionStore store, IOutboxStore outbox, UserLimiter limiter, ChatStreamRegistry streams, IOptions<ChatOptions> chatOptions,
        IHostApplicationLifetime lifetime, ChatRunTracker runs, TimeProvider time, ILogger<ChatAgent> logger, [FromServices] FirestoreStreamRelay? elsewhere)
    {
        var options = chatOptions.Value;
        var userId = context.User.UserId();

        // A client reconnecting to the same URL (EventSource does) resumes instead of asking again.
        if (context.Request.Headers.TryGetValue("Last-Event-ID", out var lastEventId) && !string.IsNullOrEmpty(lastEventId))
        {
            return await Resume(context, streams, elsewhere, userId, lastEventId!, options);
        }

        var (chat, problem) = await ReadRequestAsync(context, options);
        if (problem is not null)
        {
            return problem;
        }

        var message = chat!.Message!;
        var modelName = chat.Model ?? models.DefaultModel;
        if (!models.TryGet(modelName, out var model))
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "unknown-model", "Unknown model",
                $"'{modelName}' is not a configured model.", new() { ["models"] = models.Names.Order().ToArray() }, field: "model");
        }

        var budgetMax = chat.BudgetMax ?? Math.Min(options.DefaultBudget, options.MaxBudgetPerRequest);
        if (budgetMax < options.MinBudget || budgetMax > options.MaxBudgetPerRequest)
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "budget-out-of-range", "budget_max out of range",
                $"budget_max must be between {options.MinBudget} and {options.MaxBudgetPerRequest}.",
                new() { ["budget_min"] = options.MinBudget, ["budget_max_ceiling"] = options.MaxBudgetPerRequest }, field: "budget_max");
        }

        var counter = counters.ForModel(model.Name);
        var inputTokens = counter.CountTokens(options.SystemPrompt) + counter.CountTokens(message);
        if (inputTokens >= budgetMax)
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "budget-too-small", "Budget too small",
                $"The message alone needs {inputTokens} tokens; budget_max is {budgetMax}.", new() { ["input_tokens"] = inputTokens }, field: "budget_max");
        }

        // Checked before the rate limiter so a refused chat costs the user nothing.
        if (!outbox.HasRoom)
        {
            return Problems.OutboxFull(context);
        }

        // One turn at a time per session, refused before the rate limiter so a refusal costs nothing.
        if (chat.SessionId is { } busySession
            && await streams.WaitForTurnAsync(userId, busySession, TurnWait, context.RequestAborted) is { } running)
        {
            return TurnInProgress(context, running);
        }

        // The quota caps the budget, and the run holds it until it ends: a request never plans to spend more than the
        // user has left, and two runs at once cannot both plan to spend the same tokens. Admitted and held in one step
        // (one round trip to the shared windows); a request refused after this gives its hold back.
        LimitDecision admission;
        TokenHoldDecision? quota;
        try
        {
            (admission, quota) = await limiter.TryAdmitAndHoldAsync(userId, budgetMax, needed: inputTokens + 1, context.RequestAborted);
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e); // the windows live in Firestore: nothing was counted
        }
        catch (ChatStoreRefusedException e)
        {
            return Problems.StoreRefused(context, e);
        }

        WriteRateLimitHeaders(context, admission);
        if (!admission.Allowed)
        {
            return admission.QuotaTokens is { } quotaTokens
                ? QuotaExhausted(context, quotaTokens, available: 0, held: 0,
                    $"You have used your {quotaTokens} tokens for this period; more become available as older usage leaves the window.")
                : Problems.Create(context, StatusCodes.Status429TooManyRequests, LimitDecision.RateLimited, "Too many requests",
                    $"At most {admission.Limit} chat requests per window; retry after {Seconds(admission.RetryAfter)} s.");
        }

        if (quota!.Hold is null)
        {
            context.Response.Headers.RetryAfter = Seconds(quota.RetryAfter).ToString(CultureInfo.InvariantCulture);
            return QuotaExhausted(context, quota.Quota, quota.Available, quota.HeldByOthers,
                $"Only {quota.Available} tokens are left in your quota{(quota.HeldByOthers > 0 ? $" while your answers in progress hold {quota.HeldByOthers}" : "")}; " +
                $"this message needs {inputTokens} to start.");
        }

        // From here a failure on our side (the store down or refusing, or a bug) gives the request's slot back: a
        // user retrying through a Firestore outage must not be locked out by it. The client's own refusals
        // (session-not-found, turn-in-progress, quota-exhausted) keep it: each cost a store read, and a client
        // repeating one should meet the limit. Until the run is tracked, the turn's claim and the quota hold are the
        // request's to give back; then the run's (it settles the hold before Admitted fails).
        ChatSession session;
        ChatStream? stream = null;
        UserLimiter.TokenHold hold = quota.Hold;
        var runStarted = false;
        try
        {
            IReadOnlyList<ChatMessageRecord> history = [];
            if (chat.SessionId is { } sessionId)
            {
                var existing = await store.GetSessionAsync(sessionId, context.RequestAborted);
                if (existing is null || existing.UserId != userId)
                {
                    await GiveBackClaims();
                    return SessionNotFound(context, sessionId);
                }

                // The turn is claimed before the history is read, so it reads the previous turn's answer.
                stream = streams.TryStart(userId, sessionId, out var other);
                if (stream is null)
                {
                    await GiveBackClaims();
                    return TurnInProgress(context, other!);
                }

                session = existing;
                history = await store.ListMessagesAfterAsync(sessionId, existing.SummaryThroughMessageId, context.RequestAborted);
            }
            else
            {
                // Stored by the run, in the commit of its first message: a new chat waits for one round trip, not two.
                var now = time.GetUtcNow();
                session = new ChatSession
                {
                    Id = Guid.NewGuid().ToString("N"),
                    UserId = userId,
                    Title = message.Shorten(80),
                    Model = model.Name,
                    CreatedAt = now,
                    UpdatedAt = now,
                };
                stream = streams.TryStart(userId, session.Id, out _)!; // a new session: nothing else can be running in it
            }

            var run = agent.Create(new ChatRunRequest(userId, session, history, message, model, hold, NewSession: chat.SessionId is null,
                Turn: TurnLeaseOf(stream, streams, options)), stream);
            runs.Track(RunInBackground(run, streams, stream, lifetime.ApplicationStopping, logger));
            runStarted = true;

            // The stream starts once the message is saved: until then a failure is the request's, with nothing to resume.
            await run.Admitted;
        }
        catch (ChatSessionBusyException e)
        {
            // Another instance runs a turn of this session: found by the claim in the message's commit, nothing saved.
            await GiveBackClaims();
            return TurnInProgress(context, e);
        }
        catch (ChatStoreUnavailableException e)
        {
            await GiveBackClaims();
            await GiveBackSlot(context, admission);
            return Problems.StoreUnavailable(context, e);
        }
        catch (ChatStoreRefusedException e)
        {
            await GiveBackClaims();
            await GiveBackSlot(context, admission);
            return Problems.StoreRefused(context, e);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client hung up, which cut the store call short: not our failure, and the store was already asked
            // for it, so the slot stays spent. The exception handler records it as a client that left, not as a 500.
            await GiveBackClaims();
            throw;
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // The API is stopping and cancelled the run before its first save: nothing was kept, nothing is wrong
            // with the request or with us, and a retry (elsewhere, or here once restarted) will pass.
            await GiveBackClaims();
            await GiveBackSlot(context, admission);
            return Problems.ShuttingDown(context);
        }
        catch
        {
            // A bug, or a failure nobody foresaw: ours all the same. The exception handler logs it and answers 500,
            // with the RateLimit headers written here (it clears the response, then writes them again).
            await GiveBackClaims();
            await GiveBackSlot(context, admission);
            throw;
        }

        context.Response.Headers["X-Session-Id"] = session.Id;
        context.Response.Headers["X-Stream-Id"] = stream.Id;
        return new SseResult(stream, 0, TimeSpan.FromSeconds(options.HeartbeatSeconds));

        async Task GiveBackClaims()
        {
            if (stream is not null)
            {
                streams.Abandon(stream); // the session takes its next message, and nobody can resume a stream that never started
            }

            if (!runStarted)
            {
                await hold.SettleAsync(0);
            }
        }
    }

    /// <summary>
    /// The run belongs to the stream, not the request: a reconnecting client can pick it up; it is cancelled
    /// when the client stops it, when no reader came back within the reconnect grace, or when the app stops.
    /// </summary>
    private static async Task RunInBackground(AgentRun run, ChatStreamRegistry streams, ChatStream stream, CancellationToken stopping, ILogger logger)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stream.RunCancellation, stopping);
        try
        {
            await Task.Yield();
            await run.ExecuteAsync(cancel.Token);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Chat run {StreamId} failed", stream.Id);
        }
        finally
        {
            streams.Complete(stream);
        }
    }

    /// <summary>
    /// Idempotent: a stream that has already ended is left as it is. A stream another instance runs (no session
    /// affinity) is stopped through Firestore, where turns are shared.
    /// </summary>
    private static async Task<IResult> CancelStream(string streamId, HttpContext context, ChatStreamRegistry streams, [FromServices] FirestoreStreamRelay? elsewhere)
    {
        var userId = context.User.UserId();
        var stream = streams.Find(streamId);
        if (stream is { IsReplica: false })
        {
            if (stream.UserId != userId)
            {
                return StreamNotFound(context);
            }

            stream.Cancel();
            return Results.NoContent();
        }

        if (stream is { IsCompleted: true } && stream.UserId == userId)
        {
            return Results.NoContent(); // a replica of a stream that has ended: nothing to stop
        }

        try
        {
            return elsewhere is not null && await elsewhere.RequestCancelAsync(streamId, userId, context.RequestAborted)
                ? Results.NoContent()
                : StreamNotFound(context);
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
        catch (ChatStoreRefusedException e)
        {
            return Problems.StoreRefused(context, e);
        }
    }

    private static Task<IResult> ResumeStream(string streamId, HttpContext context, ChatStreamRegistry streams, IOptions<ChatOptions> options,
        [FromServices] FirestoreStreamRelay? elsewhere)
    {
        var lastEventId = context.Request.Headers["Last-Event-ID"].ToString();
        return Resume(context, streams, elsewhere, context.User.UserId(), string.IsNullOrEmpty(lastEventId) ? $"{streamId}.0" : lastEventId, options.Value, streamId);
    }

    private static async Task<IResult> Resume(HttpContext context, ChatStreamRegistry streams, FirestoreStreamRelay? elsewhere, string userId, string lastEventId,
        ChatOptions options, string? expectedStream = null)
    {
        if (!ChatStream.TryParseEventId(lastEventId, out var streamId, out var sequence) || (expectedStream is not null && streamId != expectedStream))
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-last-event-id", "Invalid Last-Event-ID",
                "Last-Event-ID must be an id this API sent, e.g. '3f2c….17'.");
        }

        var stream = streams.Find(streamId);
        if (stream is null && elsewhere is not null)
        {
            // Run by another instance (no session affinity): followed through a copy it makes in Firestore.
            try
            {
                stream = await elsewhere.FollowAsync(streamId, userId, sequence, context.RequestAborted);
            }
            catch (ChatStoreUnavailableException e)
            {
                return Problems.StoreUnavailable(context, e);
            }
            catch (ChatStoreRefusedException e)
            {
                return Problems.StoreRefused(context, e);
            }
        }

        if (stream is null || stream.UserId != userId)
        {
            return StreamNotFound(context);
        }

        // An id past the stream's last event was never sent: replaying from the end would hand that client events it
        // has not seen under ids it believes it has.
        if (stream.EventCount is var sent && sequence > sent)
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-last-event-id", "Invalid Last-Event-ID",
                $"Last-Event-ID '{lastEventId}' is past the last event this stream has sent ({streamId}.{sent}).");
        }

        context.Response.Headers["X-Session-Id"] = stream.SessionId;
        context.Response.Headers["X-Stream-Id"] = stream.Id;
        return new SseResult(stream, sequence, TimeSpan.FromSeconds(options.HeartbeatSeconds));
    }

    private static IResult StreamNotFound(HttpContext context) =>
        Problems.Create(context, StatusCodes.Status404NotFound, "stream-not-found", "Stream not found",
            "No stream with that id is in progress or recently finished. Read the session's messages instead.");

    private static Ok<ModelList> ListModels(ModelCatalog models) =>
        TypedResults.Ok(new ModelList(models.DefaultModel, models.Specs
            .Select(m => new ModelInfo(m.Name, m.Options.Provider == ModelProvider.Offline ? "offline" : "openai", m.ResolveEncoding(),
                m.Options.ContextWindow, m.Options.MaxOutputTokens))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList()));

    private static async Task<IResult> ListSessions(HttpContext context, IChatSessionStore store, string? limit = null, string? cursor = null)
    {
        var pageSize = SessionPageDefault;
        if (limit is not null && !TryParseLimit(limit, SessionPageMax, out pageSize))
        {
            return InvalidLimit(context, SessionPageMax);
        }

        SessionCursor? after = null;
        if (cursor is not null && !SessionCursor.TryParse(cursor, Ids.IsSafe, out after))
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-cursor", "Invalid cursor",
                "cursor must be a next_cursor value this API returned.");
        }

        try
        {
            return TypedResults.Ok(await store.ListSessionsAsync(context.User.UserId(), pageSize, after, context.RequestAborted));
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
        catch (ChatStoreIndexMissingException e)
        {
            return Problems.IndexMissing(context, e.Message);
        }
    }

    private static async Task<IResult> GetSession(string sessionId, HttpContext context, IChatSessionStore store)
    {
        if (!Ids.IsSafe(sessionId))
        {
            return InvalidSessionId(context);
        }

        try
        {
            var session = await store.GetSessionAsync(sessionId, context.RequestAborted);
            return session is null || session.UserId != context.User.UserId() ? SessionNotFound(context, sessionId) : TypedResults.Ok(session);
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
    }

    private static async Task<IResult> RenameSession(string sessionId, HttpContext context, IChatSessionStore store, IOptions<ChatOptions> chatOptions)
    {
        if (!Ids.IsSafe(sessionId))
        {
            return InvalidSessionId(context);
        }

        var (update, problem) = await JsonBody.ReadAsync<SessionUpdate>(context, chatOptions.Value.MaxRequestBytes, "a session update");
        if (problem is not null)
        {
            return problem;
        }

        var title = update?.Title?.Trim();
        var invalid = string.IsNullOrEmpty(title) ? "title is required and must contain text."
            : title.Length > MaxTitleChars ? $"title has {title.Length} characters; the limit is {MaxTitleChars}."
            : title.Any(char.IsControl) ? "title must be one line of text, without line breaks or control characters."
            : null;
        if (invalid is not null)
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-title", "Invalid title", invalid,
                new() { ["max_title_chars"] = MaxTitleChars }, field: "title");
        }

        try
        {
            var session = await store.GetSessionAsync(sessionId, context.RequestAborted);
            if (session is null || session.UserId != context.User.UserId() || !await store.RenameSessionAsync(sessionId, title!, context.RequestAborted))
            {
                return SessionNotFound(context, sessionId);
            }

            return TypedResults.Ok(session with { Title = title! });
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
    }

    private static async Task<IResult> DeleteSession(string sessionId, HttpContext context, IChatSessionStore store, ChatStreamRegistry streams, IOptions<ChatOptions> options,
        ILoggerFactory loggers)
    {
        if (!Ids.IsSafe(sessionId))
        {
            return InvalidSessionId(context);
        }

        var userId = context.User.UserId();
        ChatStream? claim = null;
        TurnLease? hold = null;
        try
        {
            var session = await store.GetSessionAsync(sessionId, context.RequestAborted);
            if (session is null || session.UserId != userId)
            {
                return SessionNotFound(context, sessionId);
            }

            // Held like a turn, so no turn starts writing into the session while its messages go; a turn just
            // stopped is given the moment it needs to save, as for a new message.
            if (await streams.WaitForTurnAsync(userId, sessionId, TurnWait, context.RequestAborted) is { } busy)
            {
                return TurnInProgress(context, busy);
            }

            claim = streams.TryStart(userId, sessionId, out var running, deletion: true);
            if (claim is null)
            {
                return TurnInProgress(context, running!);
            }

            // And held for every instance: a turn running elsewhere is refused here, and a send elsewhere meanwhile is
            // refused there. Deleting the session gives the hold up with it.
            if (TurnLeaseOf(claim, streams, options.Value) is { } deleting)
            {
                await store.ClaimTurnAsync(sessionId, hold = deleting, context.RequestAborted);
            }

            await store.DeleteSessionAsync(sessionId, context.RequestAborted);
            hold = null; // deleted with the session
            return TypedResults.NoContent();
        }
        catch (ChatSessionBusyException e)
        {
            return TurnInProgress(context, e);
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
        finally
        {
            // A delete that did not finish (its client left, the store failed) leaves the session as deletable as it
            // was and as open to messages: its hold goes, not after its lifetime.
            if (hold?.Version is not null)
            {
                try
                {
                    await store.GiveUpTurnAsync(sessionId, hold, CancellationToken.None);
                }
                catch (Exception e)
                {
                    loggers.CreateLogger(typeof(ChatApis).FullName!).LogWarning(e,
                        "Could not give up the hold of an unfinished delete of session {SessionId}; it lapses in {Seconds} s", sessionId, hold.Lifetime.TotalSeconds);
                }
            }

            if (claim is not null)
            {
                streams.Abandon(claim);
            }
        }
    }

    private static async Task<IResult> GetMessages(string sessionId, HttpContext context, IChatSessionStore store, string? limit = null, string? after = null)
    {
        if (!Ids.IsSafe(sessionId))
        {
            return InvalidSessionId(context);
        }

        var size = MessagePageDefault;
        if (limit is not null && !TryParseLimit(limit, MessagePageMax, out size))
        {
            return InvalidLimit(context, MessagePageMax);
        }

        if (after is not null && !Ids.IsSafe(after))
        {
            return Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-after", "Invalid after",
                "after must be the id of a message you have read (1-128 characters of letters, digits, '-' and '_').");
        }

        try
        {
            var session = await store.GetSessionAsync(sessionId, context.RequestAborted);
            if (session is null || session.UserId != context.User.UserId())
            {
                return SessionNotFound(context, sessionId);
            }

            // One more than asked says whether a next page exists, without a second read.
            var messages = await store.ListMessagesAsync(sessionId, after, size + 1, context.RequestAborted);
            if (messages.Count > size)
            {
                messages = messages.Take(size).ToList();
                var next = $"{context.Request.PathBase}{context.Request.Path}?limit={size}&after={Uri.EscapeDataString(messages[^1].Id)}";
                context.Response.Headers.Link = $"<{next}>; rel=\"next\"";
            }

            return TypedResults.Ok(messages);
        }
        catch (ChatStoreUnavailableException e)
        {
            return Problems.StoreUnavailable(context, e);
        }
    }

    /// <summary>Reads and validates the body; a problem result for the first thing wrong with it.</summary>
    private static async Task<(ChatRequest? Request, IResult? Problem)> ReadRequestAsync(HttpContext context, ChatOptions options)
    {
        var (request, problem) = await JsonBody.ReadAsync<ChatRequest>(context, options.MaxRequestBytes, "a chat request");
        if (problem is not null)
        {
            return (null, problem);
        }

        if (request is null || string.IsNullOrWhiteSpace(request.Message))
        {
            return (null, Problems.Create(context, StatusCodes.Status400BadRequest, "empty-message", "Empty message",
                "message is required and must contain text.", field: "message"));
        }

        if (request.Message.Length > options.MaxMessageChars)
        {
            return (null, Problems.Create(context, StatusCodes.Status413PayloadTooLarge, "message-too-large", "Message too large",
                $"message has {request.Message.Length} characters; the limit is {options.MaxMessageChars}.",
                new() { ["max_message_chars"] = options.MaxMessageChars }, field: "message"));
        }

        if (request.SessionId is not null && !Ids.IsSafe(request.SessionId))
        {
            return (null, InvalidSessionId(context, field: "session_id"));
        }

        return (request, null);
    }

    // Parsed by hand rather than bound, so a bad value gets this API's problem codes.
    private static bool TryParseLimit(string limit, int max, out int size) =>
        int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out size) && size >= 1 && size <= max;

    private static IResult InvalidLimit(HttpContext context, int max) =>
        Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-limit", "Invalid limit",
            $"limit must be a whole number from 1 to {max}.", new() { ["limit_max"] = max });

    /// <param name="field">The body field that held it; null when it came in the path.</param>
    private static IResult InvalidSessionId(HttpContext context, string? field = null) =>
        Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-session-id", "Invalid session id",
            "A session id is 1-128 characters of letters, digits, '-' and '_'.", field: field);

    /// <summary>
    /// The hold of a turn (or a deletion) on its session for every instance, named by its stream; null where the rule
    /// is kept per instance. A hold this instance's own ended turn left behind (its last commit failed) is taken over.
    /// </summary>
    private static TurnLease? TurnLeaseOf(ChatStream stream, ChatStreamRegistry streams, ChatOptions options) => options.SharedTurns
        ? new TurnLease(stream.Id, options.TurnLease)
        {
            Deleting = stream.IsDeletion,
            EndedHere = streams.HasEnded,
            UserId = stream.UserId,
            InstanceId = streams.InstanceId,
            ResumableFor = stream.IsDeletion ? null : streams.ResumeWindow,
        }
        : null;

    /// <summary>A session answers one message at a time; the running turn can be read (or resumed) meanwhile.</summary>
    private static IResult TurnInProgress(HttpContext context, ChatStream running) => TurnInProgress(context, running.SessionId, running.Id, running.IsDeletion);

    /// <summary>The same answer when the session is held on another instance (found by the hold in Firestore).</summary>
    private static IResult TurnInProgress(HttpContext context, ChatSessionBusyException busy) => TurnInProgress(context, busy.SessionId, busy.StreamId, busy.Deleting);

    private static IResult TurnInProgress(HttpContext context, string sessionId, string streamId, bool deleting) => deleting
        ? Problems.Create(context, StatusCodes.Status409Conflict, "session-being-deleted", "The session is being deleted",
            $"Session '{sessionId}' is being deleted; it takes no more messages.", new() { ["session_id"] = sessionId })
        : Problems.Create(context, StatusCodes.Status409Conflict, "turn-in-progress", "A turn is in progress",
            $"Session '{sessionId}' is still answering a message. Wait for its done event, or follow it at GET /api/chat/streams/{streamId}, then send again.",
            new() { ["session_id"] = sessionId, ["stream_id"] = streamId });

    /// <summary>
    /// 429 for the token quota. Its numbers are in the body: the RateLimit headers describe the request window on
    /// every answer, so a client pacing its requests by them is never told the quota is a number of requests.
    /// </summary>
    private static IResult QuotaExhausted(HttpContext context, long quota, long available, long held, string detail) =>
        Problems.Create(context, StatusCodes.Status429TooManyRequests, LimitDecision.QuotaExhausted, "Token quota exhausted", detail,
            new() { ["quota_tokens"] = quota, ["available_tokens"] = available, ["held_tokens"] = held });

    private static IResult SessionNotFound(HttpContext context, string sessionId) =>
        Problems.Create(context, StatusCodes.Status404NotFound, "session-not-found", "Session not found",
            $"No session '{sessionId}' belongs to you.");

    /// <summary>
    /// A chat failed on our side before its stream started: it does not count against the request rate, and its
    /// RateLimit headers say so (Remaining as it is now, this request's slot included).
    /// </summary>
    private static async Task GiveBackSlot(HttpContext context, LimitDecision admission)
    {
        // A store that cannot be reached keeps the slot (logged); the headers then say what admission said.
        if (admission.Slot is { } slot && await slot.ReleaseAsync() is { } standing)
        {
            WriteRateLimitHeaders(context, standing);
        }
    }

    /// <summary>
    /// The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), plus Retry-After when refused. The
    /// decision is kept on the request too, for the exception handler to write them again after it cleared the response.
    /// </summary>
    internal static void WriteRateLimitHeaders(HttpContext context, LimitDecision decision)
    {
        context.Features.Set(decision);
        var headers = context.Response.Headers;
        headers["RateLimit-Limit"] = decision.Limit.ToString(CultureInfo.InvariantCulture);
        headers["RateLimit-Remaining"] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
        headers["RateLimit-Reset"] = Seconds(decision.Reset).ToString(CultureInfo.InvariantCulture);
        if (decision.RetryAfter is { } retry)
        {
            headers.RetryAfter = Seconds(retry).ToString(CultureInfo.InvariantCulture);
        }
    }

    private static long Seconds(TimeSpan? span) => (long)Math.Ceiling((span ?? TimeSpan.Zero).TotalSeconds);
}

/// <summary>Writes a chat stream as server-sent events.</summary>
internal sealed class SseResult(ChatStream stream, long afterSequence, TimeSpan heartbeat) : IResult
{
    public Task ExecuteAsync(HttpContext httpContext) => SseResponse.WriteAsync(httpContext, stream, afterSequence, heartbeat);
}
