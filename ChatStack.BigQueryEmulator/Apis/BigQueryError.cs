using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Apis;

/// <summary>An error answered in BigQuery's envelope: HTTP code, canonical status, and one reason.</summary>
public sealed class BigQueryError(int code, string status, string reason, string message, string? location = null)
    : Exception(message)
{
    public int Code { get; } = code;
    public string Status { get; } = status;
    public string Reason { get; } = reason;
    public string? Location { get; } = location;

    public static BigQueryError Invalid(string message, string? location = null) =>
        new(400, "INVALID_ARGUMENT", "invalid", message, location);

    public static BigQueryError InvalidQuery(string message) =>
        new(400, "INVALID_ARGUMENT", "invalidQuery", message, "query");

    public static BigQueryError NotFound(string message) => new(404, "NOT_FOUND", "notFound", message);

    /// <summary>A table a query, DML or DDL statement names does not exist, in jobs' wording (tables.get says less).</summary>
    public static BigQueryError TableNotFoundInQuery(string project, string dataset, string table) =>
        NotFound($"Not found: Table {project}:{dataset}.{table} was not found in location US");

    public static BigQueryError Duplicate(string message) => new(409, "ALREADY_EXISTS", "duplicate", message);

    public static BigQueryError PayloadTooLarge(long limit) =>
        new(400, "INVALID_ARGUMENT", "badRequest", $"Request payload size exceeds the limit: {limit} bytes.");

    public ErrorEnvelope ToEnvelope() => new()
    {
        Error = new ErrorBody
        {
            Code = Code,
            Message = Message,
            Status = Status,
            Errors = [new ErrorItem { Message = Message, Domain = "global", Reason = Reason, Location = Location, LocationType = Location is null ? null : "other" }],
        },
    };
}
