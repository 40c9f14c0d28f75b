using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ChatStack.GoogleCloud.BigQuery;

// DTOs for the BigQuery v2 REST resources, named as BigQuery names them on the wire. INT64 fields travel as
// strings in BigQuery's JSON, so they are strings here too (Int64StringConverter also accepts bare numbers).

public sealed class DatasetReference
{
    public string? ProjectId { get; set; }
    public string? DatasetId { get; set; }
}

public sealed class Dataset
{
    public string? Kind { get; set; }
    public string? Id { get; set; }
    public string? Etag { get; set; }
    public string? SelfLink { get; set; }
    public DatasetReference? DatasetReference { get; set; }
    public string? FriendlyName { get; set; }
    public string? Description { get; set; }
    public string? Location { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? DefaultTableExpirationMs { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? CreationTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? LastModifiedTime { get; set; }
}

public sealed class TableReference
{
    public string? ProjectId { get; set; }
    public string? DatasetId { get; set; }
    public string? TableId { get; set; }
}

public sealed class TableFieldSchema
{
    public string? Name { get; set; }
    public string? Type { get; set; }
    public string? Mode { get; set; }
    public string? Description { get; set; }
    public List<TableFieldSchema>? Fields { get; set; }
}

public sealed class TableSchema
{
    public List<TableFieldSchema>? Fields { get; set; }
}

public sealed class TimePartitioning
{
    public string? Type { get; set; }
    public string? Field { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? ExpirationMs { get; set; }
    public bool? RequirePartitionFilter { get; set; }
}

public sealed class Clustering
{
    public List<string>? Fields { get; set; }
}

public sealed class ViewDefinition
{
    public string? Query { get; set; }
    public bool? UseLegacySql { get; set; }
}

public sealed class Table
{
    public string? Kind { get; set; }
    public string? Id { get; set; }
    public string? Etag { get; set; }
    public string? SelfLink { get; set; }
    public TableReference? TableReference { get; set; }
    public string? FriendlyName { get; set; }
    public string? Description { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    public TableSchema? Schema { get; set; }
    public TimePartitioning? TimePartitioning { get; set; }
    public Clustering? Clustering { get; set; }
    public bool? RequirePartitionFilter { get; set; }
    public ViewDefinition? View { get; set; }
    public string? Type { get; set; }
    public string? Location { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? NumRows { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? NumBytes { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? CreationTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? LastModifiedTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? ExpirationTime { get; set; }
}

public sealed class ErrorProto
{
    public string? Reason { get; set; }
    public string? Location { get; set; }
    public string? DebugInfo { get; set; }
    public string? Message { get; set; }
}

public sealed class InsertAllRow
{
    public string? InsertId { get; set; }
    public JsonObject? Json { get; set; }
}

public sealed class InsertAllRequest
{
    public bool? SkipInvalidRows { get; set; }
    public bool? IgnoreUnknownValues { get; set; }
    public string? TemplateSuffix { get; set; }
    public List<InsertAllRow>? Rows { get; set; }
}

public sealed class InsertError
{
    public int Index { get; set; }
    public List<ErrorProto>? Errors { get; set; }
}

public sealed class InsertAllResponse
{
    public string? Kind { get; set; }
    public List<InsertError>? InsertErrors { get; set; }
}

public sealed class QueryParameterType
{
    public string? Type { get; set; }
    public QueryParameterType? ArrayType { get; set; }
    public List<QueryParameterStructType>? StructTypes { get; set; }
}

public sealed class QueryParameterStructType
{
    public string? Name { get; set; }
    public QueryParameterType? Type { get; set; }
}

public sealed class QueryParameterValue
{
    [JsonConverter(typeof(ScalarStringConverter))] public string? Value { get; set; }
    public List<QueryParameterValue>? ArrayValues { get; set; }
    public Dictionary<string, QueryParameterValue>? StructValues { get; set; }
}

public sealed class QueryParameter
{
    public string? Name { get; set; }
    public QueryParameterType? ParameterType { get; set; }
    public QueryParameterValue? ParameterValue { get; set; }
}

public sealed class DataFormatOptions
{
    public bool? UseInt64Timestamp { get; set; }
}

public sealed class QueryRequest
{
    public string? Kind { get; set; }
    public string? Query { get; set; }
    public bool? UseLegacySql { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? MaxResults { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TimeoutMs { get; set; }
    public bool? DryRun { get; set; }
    public DatasetReference? DefaultDataset { get; set; }
    public List<QueryParameter>? QueryParameters { get; set; }
    public string? ParameterMode { get; set; }
    public DataFormatOptions? FormatOptions { get; set; }
    public string? RequestId { get; set; }
    public string? Location { get; set; }
    public string? JobCreationMode { get; set; }
    public bool? UseQueryCache { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
}

public sealed class JobReference
{
    public string? ProjectId { get; set; }
    public string? JobId { get; set; }
    public string? Location { get; set; }
}

public sealed class QueryResponse
{
    public string? Kind { get; set; }
    public string? Etag { get; set; }
    public TableSchema? Schema { get; set; }
    public JobReference? JobReference { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalRows { get; set; }
    public string? PageToken { get; set; }
    /// <summary>Rows in BigQuery's <c>{"f":[{"v":…}]}</c> encoding; <see cref="BigQueryRows"/> decodes them.</summary>
    public List<JsonObject>? Rows { get; set; }
    public bool? JobComplete { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalBytesProcessed { get; set; }
    public bool? CacheHit { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? NumDmlAffectedRows { get; set; }
    public List<ErrorProto>? Errors { get; set; }
}

public sealed class JobConfigurationQuery
{
    public string? Query { get; set; }
    public bool? UseLegacySql { get; set; }
    public DatasetReference? DefaultDataset { get; set; }
    public List<QueryParameter>? QueryParameters { get; set; }
    public string? ParameterMode { get; set; }
    public TableReference? DestinationTable { get; set; }
    public string? WriteDisposition { get; set; }
    public string? CreateDisposition { get; set; }
    public string? Priority { get; set; }
    public bool? UseQueryCache { get; set; }
}

public sealed class JobConfiguration
{
    public string? JobType { get; set; }
    public JobConfigurationQuery? Query { get; set; }
    public bool? DryRun { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? JobTimeoutMs { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
}

public sealed class JobStatus
{
    public string? State { get; set; }
    public ErrorProto? ErrorResult { get; set; }
    public List<ErrorProto>? Errors { get; set; }
}

public sealed class JobStatistics2
{
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalBytesProcessed { get; set; }
    public string? StatementType { get; set; }
    public bool? CacheHit { get; set; }
    public TableSchema? Schema { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? NumDmlAffectedRows { get; set; }
}

public sealed class JobStatistics
{
    [JsonConverter(typeof(Int64StringConverter))] public string? CreationTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? StartTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? EndTime { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalBytesProcessed { get; set; }
    public JobStatistics2? Query { get; set; }
}

public sealed class Job
{
    public string? Kind { get; set; }
    public string? Etag { get; set; }
    public string? Id { get; set; }
    public string? SelfLink { get; set; }
    public string? UserEmail { get; set; }
    public JobReference? JobReference { get; set; }
    public JobConfiguration? Configuration { get; set; }
    public JobStatus? Status { get; set; }
    public JobStatistics? Statistics { get; set; }
}

public sealed class GetQueryResultsResponse
{
    public string? Kind { get; set; }
    public string? Etag { get; set; }
    public TableSchema? Schema { get; set; }
    public JobReference? JobReference { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalRows { get; set; }
    public string? PageToken { get; set; }
    public List<JsonObject>? Rows { get; set; }
    public bool? JobComplete { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? TotalBytesProcessed { get; set; }
    public bool? CacheHit { get; set; }
    [JsonConverter(typeof(Int64StringConverter))] public string? NumDmlAffectedRows { get; set; }
    public List<ErrorProto>? Errors { get; set; }
}

public sealed class ErrorBody
{
    public int Code { get; set; }
    public string? Message { get; set; }
    public string? Status { get; set; }
    public List<ErrorItem>? Errors { get; set; }
}

public sealed class ErrorItem
{
    public string? Reason { get; set; }
    public string? Domain { get; set; }
    public string? Message { get; set; }
    public string? Location { get; set; }
    public string? LocationType { get; set; }
}

public sealed class ErrorEnvelope
{
    public ErrorBody? Error { get; set; }
}

/// <summary>BigQuery writes INT64 as JSON strings; some clients send numbers. Accept both when they are integers, write strings.</summary>
public sealed class Int64StringConverter : JsonConverter<string?>
{
    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = ScalarStringConverter.ReadScalar(ref reader);
        if (text is not null && !long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
        {
            throw new JsonException($"Invalid INT64 value: \"{text}\".");
        }
        return text;
    }

    public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>A query parameter value: BigQuery sends strings; some clients send numbers or booleans.</summary>
public sealed class ScalarStringConverter : JsonConverter<string?>
{
    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => ReadScalar(ref reader);

    internal static string? ReadScalar(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan),
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        JsonTokenType.Null => null,
        _ => throw new JsonException($"Expected a scalar, got {reader.TokenType}."),
    };

    public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Dataset))]
[JsonSerializable(typeof(Table))]
[JsonSerializable(typeof(InsertAllRequest))]
[JsonSerializable(typeof(InsertAllResponse))]
[JsonSerializable(typeof(QueryRequest))]
[JsonSerializable(typeof(QueryResponse))]
[JsonSerializable(typeof(Job))]
[JsonSerializable(typeof(GetQueryResultsResponse))]
[JsonSerializable(typeof(ErrorEnvelope))]
[JsonSerializable(typeof(JsonObject))]
public sealed partial class BigQueryJsonContext : JsonSerializerContext;
