using System.Text.Json.Nodes;

namespace ChatStack.GoogleCloud.BigQuery;

/// <summary>A typed row for insertAll and the id BigQuery de-duplicates it by.</summary>
public readonly record struct InsertAllRow<TRow>(string InsertId, TRow Json);

/// <summary>The BigQuery v2 REST calls ChatStack makes. Errors surface as <see cref="BigQueryException"/>.</summary>
public interface IBigQueryClient
{
    string ProjectId { get; }

    Task<Dataset> CreateDatasetAsync(Dataset dataset, CancellationToken cancellationToken = default);

    Task<Dataset> GetDatasetAsync(string datasetId, CancellationToken cancellationToken = default);

    Task<Table> CreateTableAsync(string datasetId, Table table, CancellationToken cancellationToken = default);

    Task<Table> GetTableAsync(string datasetId, string tableId, CancellationToken cancellationToken = default);

    Task<Table> PatchTableAsync(string datasetId, string tableId, Table patch, CancellationToken cancellationToken = default);

    /// <summary>Streams rows; rows without an insertId get one first, so every retry carries the same ids.</summary>
    Task<InsertAllResponse> InsertAllAsync(string datasetId, string tableId, InsertAllRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Streams typed rows serialised by <paramref name="rowType"/> (source-generated JSON is several times cheaper
    /// than <see cref="JsonObject"/>). Each row needs an insertId; the body is serialised once, so retries resend it.
    /// </summary>
    Task<InsertAllResponse> InsertAllAsync<TRow>(string datasetId, string tableId, IReadOnlyList<InsertAllRow<TRow>> rows,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TRow> rowType, bool skipInvalidRows = false, bool ignoreUnknownValues = false,
        CancellationToken cancellationToken = default);

    /// <summary>jobs.query: runs GoogleSQL (useLegacySql is forced to false) and returns the first page.</summary>
    Task<QueryResponse> QueryAsync(QueryRequest request, CancellationToken cancellationToken = default);

    Task<GetQueryResultsResponse> GetQueryResultsAsync(JobReference job, string? pageToken = null, long? maxResults = null, CancellationToken cancellationToken = default);

    /// <summary>Runs a query and yields every row across all pages.</summary>
    IAsyncEnumerable<JsonObject> QueryRowsAsync(QueryRequest request, CancellationToken cancellationToken = default);
}
