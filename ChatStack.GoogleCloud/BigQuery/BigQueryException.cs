namespace ChatStack.GoogleCloud.BigQuery;

/// <summary>A BigQuery error response: HTTP code, canonical status, and the first error's reason and location.</summary>
public sealed class BigQueryException(int code, string? status, string? reason, string? location, string message, IReadOnlyList<ErrorItem>? errors = null)
    : Exception(message)
{
    public int Code { get; } = code;
    public string? Status { get; } = status;
    public string? Reason { get; } = reason;
    public string? Location { get; } = location;
    public IReadOnlyList<ErrorItem> Errors { get; } = errors ?? [];

    /// <summary>Worth retrying: rate limits and server-side failures, as Google's client libraries treat them.</summary>
    public bool IsTransient => Code is 429 or 500 or 502 or 503 or 504 || Reason is "backendError" or "rateLimitExceeded" or "internalError";
}
