namespace ChatStack.ChatApi.Apis;

/// <summary>RFC 7807 problem responses with a stable <c>code</c>, each logged once where it is made.</summary>
internal static class Problems
{
    public const string TypeBase = "https://chatstack.dev/problems/";

    public static IResult Create(HttpContext context, int status, string code, string title, string detail, Dictionary<string, object?>? extensions = null)
    {
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("ChatStack.ChatApi.Problems")
            .LogInformation("{Method} {Path} answered {Status} {Code}: {Detail}", context.Request.Method, context.Request.Path, status, code, detail);
        extensions ??= [];
        extensions["code"] = code;
        return TypedResults.Problem(detail, statusCode: status, title: title, type: TypeBase + code, extensions: extensions);
    }

    /// <summary>The store did not answer: come back shortly, nothing was spent.</summary>
    public static IResult StoreUnavailable(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "5";
        return Create(context, StatusCodes.Status503ServiceUnavailable, "store-unavailable", "Conversation store unavailable",
            "The conversation store did not answer. No tokens were spent; retry after a few seconds.");
    }
}
