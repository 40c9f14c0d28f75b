using System.Text.Json.Nodes;

namespace ChatStack.GoogleCloud.BigQuery;

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

    /// <summary>jobs.query: runs GoogleSQL (useLegacySql is forced to false) and returns the first page.</summary>
    Task<QueryResponse> QueryAsync(QueryRequest request, CancellationToken cancellationToken = default);

    Task<GetQueryResultsResponse> GetQueryResultsAsync(JobReference job, string? pageToken = null, long? maxResults = null, CancellationToken cancellationToken = default);

    /// <summary>Runs a query and yields every row across all pages.</summary>
    IAsyncEnumerable<JsonObject> QueryRowsAsync(QueryRequest request, CancellationToken cancellationToken = default);
}
