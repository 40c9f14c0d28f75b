using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Options;

namespace ChatStack.GoogleCloud.BigQuery;

/// <summary>
/// BigQuery v2 over REST with System.Text.Json. The HttpClient's base address and credentials come from
/// <see cref="BigQueryOptions"/>: the emulator over plain http, or BigQuery with application default credentials.
/// </summary>
public sealed class BigQueryClient(HttpClient http, IOptions<BigQueryOptions> options) : IBigQueryClient
{
    private readonly BigQueryOptions _options = options.Value;

    public string ProjectId => _options.ProjectId;

    private string Project => "bigquery/v2/projects/" + Uri.EscapeDataString(_options.ProjectId);

    private static string Segment(string value) => Uri.EscapeDataString(value);

    public Task<Dataset> CreateDatasetAsync(Dataset dataset, CancellationToken cancellationToken = default)
    {
        dataset.DatasetReference ??= new DatasetReference();
        dataset.DatasetReference.ProjectId ??= ProjectId;
        return SendAsync(HttpMethod.Post, $"{Project}/datasets", dataset, BigQueryJsonContext.Default.Dataset, BigQueryJsonContext.Default.Dataset, retry: false, cancellationToken);
    }

    public Task<Dataset> GetDatasetAsync(string datasetId, CancellationToken cancellationToken = default) =>
        SendAsync<object, Dataset>(HttpMethod.Get, $"{Project}/datasets/{Segment(datasetId)}", null, null, BigQueryJsonContext.Default.Dataset, retry: true, cancellationToken);

    public Task<Table> CreateTableAsync(string datasetId, Table table, CancellationToken cancellationToken = default)
    {
        table.TableReference ??= new TableReference();
        table.TableReference.ProjectId ??= ProjectId;
        table.TableReference.DatasetId ??= datasetId;
        return SendAsync(HttpMethod.Post, $"{Project}/datasets/{Segment(datasetId)}/tables", table, BigQueryJsonContext.Default.Table, BigQueryJsonContext.Default.Table, retry: false, cancellationToken);
    }

    public Task<Table> GetTableAsync(string datasetId, string tableId, CancellationToken cancellationToken = default) =>
        SendAsync<object, Table>(HttpMethod.Get, $"{Project}/datasets/{Segment(datasetId)}/tables/{Segment(tableId)}", null, null, BigQueryJsonContext.Default.Table, retry: true, cancellationToken);

    public Task<Table> PatchTableAsync(string datasetId, string tableId, Table patch, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, $"{Project}/datasets/{Segment(datasetId)}/tables/{Segment(tableId)}", patch, BigQueryJsonContext.Default.Table, BigQueryJsonContext.Default.Table, retry: false, cancellationToken);

    public Task<InsertAllResponse> InsertAllAsync(string datasetId, string tableId, InsertAllRequest request, CancellationToken cancellationToken = default)
    {
        foreach (var row in request.Rows ?? [])
        {
            row.InsertId ??= Guid.NewGuid().ToString("N");
        }
        return SendAsync(HttpMethod.Post, $"{Project}/datasets/{Segment(datasetId)}/tables/{Segment(tableId)}/insertAll", request,
            BigQueryJsonContext.Default.InsertAllRequest, BigQueryJsonContext.Default.InsertAllResponse, retry: true, cancellationToken);
    }

    public Task<InsertAllResponse> InsertAllAsync<TRow>(string datasetId, string tableId, IReadOnlyList<InsertAllRow<TRow>> rows, JsonTypeInfo<TRow> rowType,
        bool skipInvalidRows = false, bool ignoreUnknownValues = false, CancellationToken cancellationToken = default)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(Math.Max(1024, rows.Count * 256));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (skipInvalidRows) writer.WriteBoolean("skipInvalidRows", true);
            if (ignoreUnknownValues) writer.WriteBoolean("ignoreUnknownValues", true);
            writer.WriteStartArray("rows");
            foreach (var row in rows)
            {
                writer.WriteStartObject();
                writer.WriteString("insertId", row.InsertId);
                writer.WritePropertyName("json");
                JsonSerializer.Serialize(writer, row.Json, rowType);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return SendBytesAsync(HttpMethod.Post, $"{Project}/datasets/{Segment(datasetId)}/tables/{Segment(tableId)}/insertAll", buffer.WrittenMemory.ToArray(),
            BigQueryJsonContext.Default.InsertAllResponse, retry: true, cancellationToken);
    }

    public Task<QueryResponse> QueryAsync(QueryRequest request, CancellationToken cancellationToken = default)
    {
        request.UseLegacySql = false;
        return SendAsync(HttpMethod.Post, $"{Project}/queries", request, BigQueryJsonContext.Default.QueryRequest, BigQueryJsonContext.Default.QueryResponse, retry: false, cancellationToken);
    }

    public Task<GetQueryResultsResponse> GetQueryResultsAsync(JobReference job, string? pageToken = null, long? maxResults = null, CancellationToken cancellationToken = default)
    {
        var query = new StringBuilder("?formatOptions.useInt64Timestamp=true");
        if (job.Location is { } location) query.Append("&location=").Append(Uri.EscapeDataString(location));
        if (pageToken is not null) query.Append("&pageToken=").Append(Uri.EscapeDataString(pageToken));
        if (maxResults is not null) query.Append("&maxResults=").Append(maxResults.Value);
        var project = Uri.EscapeDataString(job.ProjectId ?? ProjectId);
        return SendAsync<object, GetQueryResultsResponse>(HttpMethod.Get, $"bigquery/v2/projects/{project}/queries/{Segment(job.JobId!)}{query}", null, null,
            BigQueryJsonContext.Default.GetQueryResultsResponse, retry: true, cancellationToken);
    }

    public async IAsyncEnumerable<JsonObject> QueryRowsAsync(QueryRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        request.FormatOptions ??= new DataFormatOptions { UseInt64Timestamp = true };
        var first = await QueryAsync(request, cancellationToken);
        foreach (var row in first.Rows ?? [])
        {
            yield return row;
        }
        var pageToken = first.PageToken;
        var maxResults = long.TryParse(request.MaxResults, out var m) ? m : (long?)null;
        var jobComplete = first.JobComplete == true;
        while (pageToken is not null || !jobComplete)
        {
            var page = await GetQueryResultsAsync(first.JobReference!, pageToken, maxResults, cancellationToken);
            jobComplete = page.JobComplete == true;
            foreach (var row in page.Rows ?? [])
            {
                yield return row;
            }
            pageToken = page.PageToken;
        }
    }

    private Task<TResponse> SendAsync<TRequest, TResponse>(HttpMethod method, string path, TRequest? body, JsonTypeInfo<TRequest>? requestType,
        JsonTypeInfo<TResponse> responseType, bool retry, CancellationToken cancellationToken)
        where TRequest : class
    {
        // Serialised once: a retried insertAll is byte-for-byte the first attempt, insertIds included.
        var payload = body is null ? null : JsonSerializer.SerializeToUtf8Bytes(body, requestType!);
        return SendBytesAsync(method, path, payload, responseType, retry, cancellationToken);
    }

    private async Task<TResponse> SendBytesAsync<TResponse>(HttpMethod method, string path, byte[]? payload, JsonTypeInfo<TResponse> responseType,
        bool retry, CancellationToken cancellationToken)
    {
        var attempts = retry ? Math.Max(1, _options.MaxAttempts) : 1;
        var backoff = _options.InitialBackoff;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var request = new HttpRequestMessage(method, path);
                if (payload is not null)
                {
                    request.Content = new ByteArrayContent(payload);
                    request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
                }
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
                var content = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    throw ToException(response.StatusCode, content);
                }
                if (content.Length == 0)
                {
                    throw new BigQueryException((int)response.StatusCode, null, null, null, "BigQuery returned an empty response.");
                }
                return JsonSerializer.Deserialize(content, responseType)!;
            }
            catch (Exception e) when (attempt < attempts && e is HttpRequestException or BigQueryException { IsTransient: true })
            {
                await Task.Delay(backoff, cancellationToken);
                backoff *= 2;
            }
        }
    }

    private static BigQueryException ToException(HttpStatusCode statusCode, byte[] content)
    {
        try
        {
            var envelope = JsonSerializer.Deserialize(content, BigQueryJsonContext.Default.ErrorEnvelope);
            if (envelope?.Error is { } error)
            {
                var first = error.Errors?.FirstOrDefault();
                return new BigQueryException(error.Code != 0 ? error.Code : (int)statusCode, error.Status, first?.Reason, first?.Location,
                    error.Message ?? first?.Message ?? statusCode.ToString(), error.Errors);
            }
        }
        catch (JsonException)
        {
            // Google's front end answers some failures (413, 502) with HTML.
        }
        var text = Encoding.UTF8.GetString(content, 0, Math.Min(content.Length, 500));
        return new BigQueryException((int)statusCode, null, null, null, $"BigQuery returned HTTP {(int)statusCode}: {text}");
    }
}
