using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Sessions;
using Microsoft.AspNetCore.Diagnostics;

namespace ChatStack.ChatApi.Apis;

/// <summary>RFC 7807 problem responses with a stable <c>code</c>, each logged once where it is made.</summary>
internal static partial class Problems
{
    public const string TypeBase = "https://chatstack.dev/problems/";

    /// <param name="field">The request body's field at fault, so a client can point at its input.</param>
    /// <param name="logDetail">What the log line says instead of <paramref name="detail"/>, for what operators need and clients must not see.</param>
    public static IResult Create(HttpContext context, int status, string code, string title, string detail, Dictionary<string, object?>? extensions = null,
        string? field = null, string? logDetail = null)
    {
        // The one log line of a refused request: a warning when it is our side (5xx), information for the client's.
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("ChatStack.ChatApi.Problems")
            .Log(status >= 500 ? LogLevel.Warning : LogLevel.Information, "{Method} {Path} answered {Status} {Code}: {Detail}",
                context.Request.Method, context.Request.Path, status, code, Loggable(logDetail ?? detail));
        extensions ??= [];
        extensions["code"] = code;
        if (field is not null)
        {
            extensions["field"] = field;
        }

        return TypedResults.Problem(detail, statusCode: status, title: title, type: TypeBase + code, extensions: extensions);
    }

    private const int MaxLoggedDetail = 500;

    /// <summary>
    /// A detail may quote the client (a model name, a field name) before any rate limit applies: one line of bounded
    /// length, or a 64 KB value with line breaks would forge log entries (each line is an entry on Cloud Run).
    /// </summary>
    internal static string Loggable(string detail)
    {
        var shortened = detail.Shorten(MaxLoggedDetail);
        if (!shortened.Any(char.IsControl))
        {
            return shortened;
        }

        var line = new System.Text.StringBuilder(shortened.Length + 16);
        foreach (var c in shortened)
        {
            if (char.IsControl(c))
            {
                line.Append($"\\u{(int)c:x4}");
            }
            else
            {
                line.Append(c);
            }
        }

        return line.ToString();
    }

    /// <summary>A problem for a bare status code (401 from authentication, 415 from routing, 500 from a bug).</summary>
    public static IResult ForStatus(HttpContext context, int status)
    {
        if (status == StatusCodes.Status401Unauthorized && context.Request.Headers.Authorization.Count > 0)
        {
            return InvalidToken(context);
        }

        var (code, title) = status switch
        {
            StatusCodes.Status400BadRequest => ("bad-request", "Bad request"),
            StatusCodes.Status401Unauthorized => ("unauthorized", "Authentication required"),
            StatusCodes.Status403Forbidden => ("forbidden", "Forbidden"),
            StatusCodes.Status404NotFound => ("not-found", "Not found"),
            StatusCodes.Status405MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            StatusCodes.Status413PayloadTooLarge => ("request-too-large", "Request too large"),
            StatusCodes.Status415UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            >= 500 => ("internal-error", "Internal error"),
            _ => ("http-" + status, "HTTP " + status),
        };
        var detail = status switch
        {
            StatusCodes.Status401Unauthorized => "Send a bearer token (in Development: POST /api/dev/token).",
            StatusCodes.Status415UnsupportedMediaType => "Send the request as application/json.",
            >= 500 => "Something went wrong on our side; it has been logged.",
            _ => title,
        };
        return Create(context, status, code, title, detail);
    }

    /// <summary>
    /// The problem for an exception no endpoint handled: a store refusal is told as one, anything else by its status.
    /// The handler cleared the response: a chat it failed after admission gets its RateLimit headers back, as they
    /// stood when it failed (its slot given back).
    /// </summary>
    public static IResult ForException(HttpContext context)
    {
        if (context.Features.Get<LimitDecision>() is { } standing)
        {
            ChatApis.WriteRateLimitHeaders(context, standing);
        }

        return context.Features.Get<IExceptionHandlerFeature>()?.Error is ChatStoreRefusedException refusal
            ? StoreRefused(context, refusal)
            : ForStatus(context, context.Response.StatusCode);
    }

    /// <summary>
    /// A token was sent and refused: say so, and why when the bearer handler's challenge says (expired, bad signature),
    /// rather than "send a bearer token" to a client that sent one.
    /// </summary>
    private static IResult InvalidToken(HttpContext context)
    {
        var challenge = context.Response.Headers.WWWAuthenticate.ToString();
        var reason = ErrorDescription().Match(challenge) is { Success: true } match ? $" ({match.Groups[1].Value.TrimEnd('.')})" : "";
        return Create(context, StatusCodes.Status401Unauthorized, "invalid-token", "Invalid token",
            $"The bearer token was refused{reason}. Get a new one (in Development: POST /api/dev/token).");
    }

    [System.Text.RegularExpressions.GeneratedRegex("error_description=\"([^\"]*)\"")]
    private static partial System.Text.RegularExpressions.Regex ErrorDescription();

    /// <summary>
    /// The API began to stop while a chat waited for its first save: the run was cancelled with nothing kept. Not a bug,
    /// and the request was fine: send it again, to another instance or to this one once it is back.
    /// </summary>
    public static IResult ShuttingDown(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return Create(context, StatusCodes.Status503ServiceUnavailable, "shutting-down", "Shutting down",
            "This instance began to stop before it saved your message; nothing was kept and no tokens were spent. Send it again.");
    }

    /// <summary>The store did not answer: come back shortly, nothing was spent. The one log line says what Firestore did.</summary>
    public static IResult StoreUnavailable(HttpContext context, ChatStoreUnavailableException cause)
    {
        context.Response.Headers.RetryAfter = "5";
        const string Detail = "The conversation store did not answer. No tokens were spent; retry after a few seconds.";
        return Create(context, StatusCodes.Status503ServiceUnavailable, "store-unavailable", "Conversation store unavailable", Detail,
            logDetail: $"{Detail} ({cause.Message})");
    }

    /// <summary>
    /// Firestore refused for a lasting reason (a permission, a missing database, a failed precondition): our deployment
    /// is at fault, not the request, and a retry will not pass until it is fixed. 500, not 503 (nothing says it passes)
    /// nor 502 (this API is no gateway, and Firestore's answer was a valid one: RFC 9110 15.6.3). Firestore's status and
    /// words go to the log only: they name the project and the documents.
    /// </summary>
    public static IResult StoreRefused(HttpContext context, ChatStoreRefusedException refusal) =>
        Create(context, StatusCodes.Status500InternalServerError, "store-error", "Conversation store refused the request",
            "The conversation store refused this request: a fault on our side, not in your request. No tokens were spent; it has been logged, and retrying will not help until it is fixed.",
            logDetail: $"Firestore refused the call with {refusal.StatusCode}: {refusal.Detail}");

    /// <summary>
    /// The session list's Firestore index is missing or still building: a deployment step, not a failure of this
    /// request. The log line keeps Firestore's own words (with the link that creates the index, and the project id,
    /// which clients need not see); the client gets the fix.
    /// </summary>
    public static IResult IndexMissing(HttpContext context, string firestoreSays)
    {
        context.Response.Headers.RetryAfter = "60";
        const string Detail = "Firestore has no ready index for the session list: it is missing, or still building. Run the provisioner against this project (it creates the index; a build takes a few minutes), then retry. Sessions can still be read by id.";
        return Create(context, StatusCodes.Status503ServiceUnavailable, "index-not-ready", "Session list not available yet", Detail,
            logDetail: $"{Detail} Firestore said: {firestoreSays}");
    }

    /// <summary>The in-memory outbox (Firestore writes off) is full while Pub/Sub is away: accepting more would drop events.</summary>
    public static IResult OutboxFull(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "10";
        return Create(context, StatusCodes.Status503ServiceUnavailable, "outbox-full", "Chat events cannot be delivered",
            "Pub/Sub is unreachable and the in-memory outbox (ENABLE_FIRESTORE_WRITE=false) is full. No tokens were spent; retry once Pub/Sub is back.");
    }
}
