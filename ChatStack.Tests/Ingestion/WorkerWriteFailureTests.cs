using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ChatStack.AnalyticsWorker.Ingestion;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.Ingestion;

/// <summary>
/// What the worker does when BigQuery refuses a write as a whole, on the real emulators and a project of its own:
/// a failed request is not the messages' fault, so it must not spend their delivery attempts.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class WorkerWriteFailureTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private readonly WorkerTestProject _project = new(stack, "wf");

    public void Dispose() => _project.Dispose();

    /// <summary>A worker process on the test's project, with short retries so a failure shows within seconds.</summary>
    private Dictionary<string, string> WorkerEnvironment(string? bigQueryHost = null)
    {
        var environment = _project.WorkerEnvironment();
        environment["Ingestion__MaxInsertBackoff"] = "00:00:02";
        environment["BIGQUERY_EMULATOR_HOST"] = bigQueryHost ?? stack.BigQueryHost;
        return environment;
    }

    [Fact]
    public async Task A_worker_that_cannot_write_holds_its_messages_until_it_can_instead_of_dead_lettering_them()
    {
        // Topics and subscriptions exist, the worker's dataset does not yet: every insertAll answers 404, as when the
        // worker is deployed before the provisioner ran or without its grant.
        await _project.ProvisionAsync("chat_analytics_other");
        var ids = await _project.PublishAsync(30);
        using var worker = new WorkerProcess(WorkerEnvironment());

        // Longer than five deliveries at the local 1-4 s retry backoff: nacking each failed write dead-lettered them all by now.
        await Task.Delay(TimeSpan.FromSeconds(25));
        Assert.Empty(await _project.DeadLettersAsync());
        using var http = new HttpClient { BaseAddress = new Uri(Regex.Match(worker.Log, @"Now listening on: (http://\S+)").Groups[1].Value) };
        var degraded = await http.GetStringAsync("/health");

        await _project.ProvisionAsync(ResourceNames.Dataset);
        Assert.Equal(ids.Count, (await _project.WaitForAsync(c => c.Distinct >= ids.Count, TimeSpan.FromSeconds(30))).Distinct);
        output.WriteLine(worker.Log);
        Assert.Contains("Not found: Dataset", worker.Log);
        Assert.Empty(await _project.DeadLettersAsync());
        // Degraded (still 200) while the writes failed, healthy once they go through.
        Assert.Equal("Degraded", degraded);
        Assert.Equal("Healthy", await http.GetStringAsync("/health"));
    }

    [Fact]
    public async Task A_bigquery_that_stops_answering_is_an_outage_the_worker_reports_and_rides_out()
    {
        await _project.ProvisionAsync(ResourceNames.Dataset);
        var ids = await _project.PublishAsync(20);
        // Connections are taken and nothing comes back, as from a hung server: only a timeout ends a request.
        await using var hung = new TcpGate(stack.BigQueryHost) { Latency = TimeSpan.FromHours(1) };
        var environment = WorkerEnvironment(hung.Address);
        environment["Ingestion__InsertTimeout"] = "00:00:02";
        using var worker = new WorkerProcess(environment);

        await Task.Delay(TimeSpan.FromSeconds(15));
        using var http = new HttpClient { BaseAddress = new Uri(Regex.Match(worker.Log, @"Now listening on: (http://\S+)").Groups[1].Value) };
        Assert.Equal("Degraded", await http.GetStringAsync("/health"));

        hung.Latency = TimeSpan.Zero;
        Assert.Equal(ids.Count, (await _project.WaitForAsync(c => c.Distinct >= ids.Count, TimeSpan.FromSeconds(30))).Distinct);
        Assert.Equal("Healthy", await http.GetStringAsync("/health"));
        Assert.Empty(await _project.DeadLettersAsync());
    }

    [Fact]
    public async Task Rows_naming_a_column_the_table_has_not_shown_yet_wait_for_it_instead_of_being_dead_lettered()
    {
        // The table as BigQuery's streaming path still sees it for a few minutes after the provisioner added a column.
        await _project.ProvisionAsync("chat_analytics_other");
        var spec = ChatStack.Provisioner.BigQuery.WarehouseSchema.ChatEvents;
        await _project.BigQuery.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = ResourceNames.Dataset } });
        await _project.BigQuery.CreateTableAsync(ResourceNames.Dataset, new Table
        {
            TableReference = new() { TableId = spec.TableId },
            Schema = new TableSchema { Fields = [.. spec.Fields.Where(f => f.Name != "total_tokens")] },
        });
        var ids = await _project.PublishAsync(10);
        using var worker = new WorkerProcess(WorkerEnvironment());

        // Longer than five deliveries at the local 1-4 s retry backoff: nacked, the rows were dead-lettered by now.
        await Task.Delay(TimeSpan.FromSeconds(25));
        Assert.Empty(await _project.DeadLettersAsync());
        await _project.BigQuery.PatchTableAsync(ResourceNames.Dataset, spec.TableId, new Table { Schema = new TableSchema { Fields = [.. spec.Fields] } });

        Assert.Equal(ids.Count, (await _project.WaitForAsync(c => c.Distinct >= ids.Count, TimeSpan.FromSeconds(30))).Distinct);
        Assert.Contains("no such field: total_tokens", worker.Log);
        Assert.Empty(await _project.DeadLettersAsync());
    }

    [Fact]
    public async Task A_refused_request_is_written_in_halves_and_only_the_row_that_breaks_it_is_dead_lettered()
    {
        await _project.ProvisionAsync(ResourceNames.Dataset);
        var ids = await _project.PublishAsync(20);
        var poison = ids[13];
        // The real emulator behind a seam that fails as real BigQuery and its client can: first with answers that are
        // not BigQuery errors at all, then refusing requests over 8 rows as too large, and any request holding one row.
        var bigQuery = new RefusingBigQuery(_project.BigQuery, maxRows: 8, poison, unreadableAnswers: 2);
        var options = Options.Create(new IngestionOptions { PullMode = PullMode.Unary, BatchSize = 20, BatchLatency = TimeSpan.FromSeconds(1), MaxInsertBackoff = TimeSpan.FromMilliseconds(500) });
        var cloud = new GoogleCloudOptions { ProjectId = _project.Id, PubSubEmulatorHost = stack.PubSubHost };
        using var meters = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var telemetry = new IngestionTelemetry(meters.GetRequiredService<IMeterFactory>());
        var source = new SubscriptionSource(new Subscriber.SubscriberClient(_project.Channel), options, cloud, NullLogger<SubscriptionSource>.Instance);
        var health = new IngestionHealth(TimeProvider.System, options);
        using var worker = new ChatEventIngestionService(source, bigQuery, options, telemetry, health, TimeProvider.System, NullLogger<ChatEventIngestionService>.Instance);

        await worker.StartAsync(CancellationToken.None);
        var written = (await _project.WaitForAsync(c => c.Distinct >= ids.Count - 1, TimeSpan.FromSeconds(30))).Distinct;
        await worker.StopAsync(CancellationToken.None);

        Assert.Equal(ids.Count - 1, written);
        Assert.Equal(TimeSpan.Zero, health.FailingFor); // the refusals were the rows' fault, not an outage
        Assert.All(bigQuery.Written, rows => Assert.InRange(rows.Count, 1, 8));
        Assert.Equal(ids.Where(id => id != poison).Order(), bigQuery.Written.SelectMany(r => r).Order());
        Assert.Contains(bigQuery.Refused, ids => ids.SequenceEqual([poison]));
    }

    /// <summary>Passes everything to the real client except the insertAll requests it refuses.</summary>
    private sealed class RefusingBigQuery(IBigQueryClient inner, int maxRows, string poisonInsertId, int unreadableAnswers) : IBigQueryClient
    {
        private int _calls;

        public ConcurrentQueue<List<string>> Written { get; } = new();

        public ConcurrentQueue<List<string>> Refused { get; } = new();

        public string ProjectId => inner.ProjectId;

        public async Task<InsertAllResponse> InsertAllAsync(string datasetId, string tableId, InsertAllRequest request, CancellationToken cancellationToken = default)
        {
            var ids = request.Rows!.Select(r => r.InsertId!).ToList();
            if (Interlocked.Increment(ref _calls) <= unreadableAnswers)
            {
                throw new JsonException("'<' is an invalid start of a value.");
            }

            if (ids.Count > maxRows || ids.Contains(poisonInsertId))
            {
                Refused.Enqueue(ids);
                throw new BigQueryException(400, "INVALID_ARGUMENT", "invalid", null, "Request payload size exceeds the limit: 10485760 bytes.");
            }

            var response = await inner.InsertAllAsync(datasetId, tableId, request, cancellationToken);
            Written.Enqueue(ids);
            return response;
        }

        public Task<Dataset> CreateDatasetAsync(Dataset dataset, CancellationToken cancellationToken = default) => inner.CreateDatasetAsync(dataset, cancellationToken);

        public Task<Dataset> GetDatasetAsync(string datasetId, CancellationToken cancellationToken = default) => inner.GetDatasetAsync(datasetId, cancellationToken);

        public Task<Table> CreateTableAsync(string datasetId, Table table, CancellationToken cancellationToken = default) => inner.CreateTableAsync(datasetId, table, cancellationToken);

        public Task<Table> GetTableAsync(string datasetId, string tableId, CancellationToken cancellationToken = default) => inner.GetTableAsync(datasetId, tableId, cancellationToken);

        public Task<Table> PatchTableAsync(string datasetId, string tableId, Table patch, CancellationToken cancellationToken = default) => inner.PatchTableAsync(datasetId, tableId, patch, cancellationToken);

        public Task<InsertAllResponse> InsertAllAsync<TRow>(string datasetId, string tableId, IReadOnlyList<InsertAllRow<TRow>> rows,
            System.Text.Json.Serialization.Metadata.JsonTypeInfo<TRow> rowType, bool skipInvalidRows = false, bool ignoreUnknownValues = false,
            CancellationToken cancellationToken = default) => throw new NotSupportedException("The worker writes JSON rows.");

        public Task<QueryResponse> QueryAsync(QueryRequest request, CancellationToken cancellationToken = default) => inner.QueryAsync(request, cancellationToken);

        public Task<GetQueryResultsResponse> GetQueryResultsAsync(JobReference job, string? pageToken = null, long? maxResults = null, CancellationToken cancellationToken = default) =>
            inner.GetQueryResultsAsync(job, pageToken, maxResults, cancellationToken);

        public IAsyncEnumerable<JsonObject> QueryRowsAsync(QueryRequest request, CancellationToken cancellationToken = default) => inner.QueryRowsAsync(request, cancellationToken);
    }
}
