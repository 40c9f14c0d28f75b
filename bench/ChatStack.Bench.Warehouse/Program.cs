// Figures for the BigQuery emulator, printed, not asserted:
//   1. tabledata.insertAll of N rows in 500-row requests over loopback HTTP through the project's client (goal ≥ 30,000 rows/s);
//   2. a per-session summary view (GoogleSQL, translated) over 1M events (goal < 1 s).
// Usage: dotnet run -c Release --project bench/ChatStack.Bench.Warehouse [-- --rows 100000 --batch 500 --parallel 4 --events 1000000 --sessions 50000 --file | --endpoint host:port]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using ChatStack.BigQueryEmulator;
using ChatStack.GoogleCloud.BigQuery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

var rowsToInsert = Arg("--rows", 100_000);
var batchSize = Arg("--batch", 500);
var eventCount = Arg("--events", 1_000_000);
var sessionCount = Arg("--sessions", 50_000);
var parallel = Arg("--parallel", 4);
var fileBacked = args.Contains("--file");
var dataPath = Path.Combine(Path.GetTempPath(), "chatstack-bench-" + Environment.ProcessId);

Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}");
Console.WriteLine($"storage: {(fileBacked ? "DuckDB file in " + dataPath : "DuckDB in memory")}");

// --endpoint host:port measures an emulator running in its own process; otherwise one is started in this process.
var endpointAt = Array.IndexOf(args, "--endpoint");
WebApplication? app = null;
string emulatorHost;
if (endpointAt >= 0)
{
    emulatorHost = args[endpointAt + 1];
}
else
{
    app = EmulatorApp.Create(
        ["--urls", "http://127.0.0.1:0", fileBacked ? $"--BigQueryEmulator:DataPath={dataPath}" : "--BigQueryEmulator:InMemory=true"],
        builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
    await app.StartAsync();
    var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    emulatorHost = $"{address.Host}:{address.Port}";
}
Console.WriteLine($"emulator: {(app is null ? "separate process at " + emulatorHost : "in this process at " + emulatorHost)}");
var options = new BigQueryOptions { ProjectId = "bench", EmulatorHost = emulatorHost };
var client = new BigQueryClient(new HttpClient { BaseAddress = options.BaseAddress }, Options.Create(options));

try
{
    try
    {
        await client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = "warehouse" } });
    }
    catch (BigQueryException e) when (e.Reason == "duplicate")
    {
        throw new InvalidOperationException("Dataset bench:warehouse exists: give the harness a fresh (in-memory) emulator.", e);
    }
    await client.CreateTableAsync("warehouse", EventsTable("events_stream"));
    await client.CreateTableAsync("warehouse", EventsTable("events"));

    // 1. insertAll throughput.
    var start = DateTimeOffset.Parse("2026-01-01T00:00:00Z", CultureInfo.InvariantCulture);
    // Rows are made before the clock starts (their synthesis is not the emulator's cost); serialising them is timed.
    var batches = Enumerable.Range(0, (rowsToInsert + batchSize - 1) / batchSize)
        .Select(b => Enumerable.Range(b * batchSize, Math.Min(batchSize, rowsToInsert - b * batchSize))
            .Select(i => new InsertAllRow<EventRow>($"i{i}", EventRow.Create(i, start))).ToList())
        .ToList();
    await client.InsertAllAsync("warehouse", "events_stream", [new InsertAllRow<EventRow>("warm-up", EventRow.Create(-1, start))], BenchJson.Default.EventRow);
    foreach (var inFlight in new[] { 1, parallel })
    {
        var tableId = $"events_stream_{inFlight}";
        await client.CreateTableAsync("warehouse", EventsTable(tableId));
        using var gate = new SemaphoreSlim(inFlight);
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(batches.Select(async batch =>
        {
            await gate.WaitAsync();
            try
            {
                var response = await client.InsertAllAsync("warehouse", tableId, batch, BenchJson.Default.EventRow);
                if (response.InsertErrors is { Count: > 0 })
                {
                    throw new InvalidOperationException("insert errors: " + response.InsertErrors[0].Errors![0].Message);
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        watch.Stop();
        var table = await client.GetTableAsync("warehouse", tableId);
        Console.WriteLine($"insertAll, {inFlight} request(s) in flight: {rowsToInsert:N0} rows in {batches.Count} requests of {batchSize}: {watch.Elapsed.TotalSeconds:F2} s = {rowsToInsert / watch.Elapsed.TotalSeconds:N0} rows/s (table has {table.NumRows} rows)");
    }

    // The same rows pre-serialised and posted with a bare HttpClient: the emulator's share of the work.
    {
        await client.CreateTableAsync("warehouse", EventsTable("events_raw"));
        var bodies = batches.Select(b => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
            new InsertAllRequest { Rows = [.. b.Select(r => new InsertAllRow { InsertId = r.InsertId, Json = System.Text.Json.JsonSerializer.SerializeToNode(r.Json, BenchJson.Default.EventRow)!.AsObject() })] },
            BigQueryJsonContext.Default.InsertAllRequest)).ToList();
        using var http = new HttpClient { BaseAddress = options.BaseAddress };
        var watch = Stopwatch.StartNew();
        foreach (var body in bodies)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await http.PostAsync("bigquery/v2/projects/bench/datasets/warehouse/tables/events_raw/insertAll", content);
            response.EnsureSuccessStatusCode();
        }
        watch.Stop();
        Console.WriteLine($"insertAll, pre-serialised bodies, 1 in flight: {rowsToInsert / watch.Elapsed.TotalSeconds:N0} rows/s ({watch.Elapsed.TotalMilliseconds / bodies.Count:F1} ms per {batchSize}-row request)");
    }

    // 2. 1M events generated in SQL, then the session summary view.
    var load = Stopwatch.StartNew();
    await client.QueryAsync(new QueryRequest
    {
        Query = $"""
            INSERT INTO warehouse.events (event_id, session_id, user_id, ts, kind, model, prompt_tokens, completion_tokens, latency_ms, cost, ok, attrs)
            SELECT CONCAT('e', CAST(i AS STRING)), CONCAT('s', CAST(MOD(i, {sessionCount}) AS STRING)), CONCAT('u', CAST(MOD(i, 1000) AS STRING)),
                   TIMESTAMP_ADD(TIMESTAMP '2026-01-01 00:00:00+00', INTERVAL i SECOND),
                   IF(MOD(i, 2) = 0, 'request', 'response'), IF(MOD(i, 3) = 0, 'gpt-4o', 'gpt-4o-mini'),
                   MOD(i, 2000), MOD(i, 500), MOD(i * 7, 3000), CAST(MOD(i, 100) AS NUMERIC) / 100000,
                   MOD(i, 17) <> 0, JSON_OBJECT('finish', IF(MOD(i, 5) = 0, 'length', 'stop'))
            FROM UNNEST(GENERATE_ARRAY(1, {eventCount})) AS i
            """,
    });
    Console.WriteLine($"load: {eventCount:N0} events over {sessionCount:N0} sessions generated by INSERT…SELECT in {load.Elapsed.TotalSeconds:F2} s");

    await client.CreateTableAsync("warehouse", new Table
    {
        TableReference = new TableReference { TableId = "session_summary" },
        View = new ViewDefinition
        {
            UseLegacySql = false,
            Query = """
                SELECT session_id,
                       ANY_VALUE(user_id) AS user_id,
                       MIN(ts) AS started_at,
                       TIMESTAMP_DIFF(MAX(ts), MIN(ts), SECOND) AS duration_s,
                       COUNT(*) AS events,
                       COUNTIF(kind = 'request') AS requests,
                       COUNTIF(NOT ok) AS failures,
                       SAFE_DIVIDE(COUNTIF(NOT ok), COUNT(*)) AS failure_rate,
                       SUM(prompt_tokens + completion_tokens) AS tokens,
                       SUM(cost) AS cost,
                       APPROX_QUANTILES(latency_ms, 100)[OFFSET(50)] AS p50_latency_ms,
                       APPROX_QUANTILES(latency_ms, 100)[OFFSET(95)] AS p95_latency_ms,
                       ARRAY_AGG(model IGNORE NULLS ORDER BY ts DESC LIMIT 1)[OFFSET(0)] AS last_model,
                       COUNTIF(JSON_VALUE(attrs, '$.finish') = 'length') AS truncated
                FROM `bench.warehouse.events`
                GROUP BY session_id
                """,
        },
    });

    foreach (var (label, sql, maxResults) in new[]
    {
        ("view, aggregated to one row", "SELECT COUNT(*) AS sessions, SUM(events) AS events, SUM(tokens) AS tokens FROM warehouse.session_summary", (string?)null),
        ("view, one session", "SELECT * FROM warehouse.session_summary WHERE session_id = 's42'", (string?)null),
        ("view, all sessions computed, first page of 1,000", "SELECT * FROM warehouse.session_summary", "1000"),
        ("view, all sessions sorted, first page of 1,000", "SELECT * FROM warehouse.session_summary ORDER BY session_id", "1000"),
    })
    {
        var timings = new List<double>();
        QueryResponse? last = null;
        for (var run = 0; run < 5; run++)
        {
            var watch = Stopwatch.StartNew();
            last = await client.QueryAsync(new QueryRequest { Query = sql, MaxResults = maxResults });
            timings.Add(watch.Elapsed.TotalMilliseconds);
        }
        timings.Sort();
        Console.WriteLine($"{label}: median {timings[2]:F0} ms, min {timings[0]:F0} ms, max {timings[^1]:F0} ms over 5 runs (totalRows {last!.TotalRows}; first row {last.Rows![0].ToJsonString()[..Math.Min(120, last.Rows[0].ToJsonString().Length)]})");
    }
}
finally
{
    if (app is not null)
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
    if (Directory.Exists(dataPath))
    {
        Directory.Delete(dataPath, recursive: true);
    }
}

int Arg(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}

static Table EventsTable(string id) => new()
{
    TableReference = new TableReference { TableId = id },
    Schema = new TableSchema
    {
        Fields =
        [
            new() { Name = "event_id", Type = "STRING", Mode = "REQUIRED" },
            new() { Name = "session_id", Type = "STRING", Mode = "REQUIRED" },
            new() { Name = "user_id", Type = "STRING" },
            new() { Name = "ts", Type = "TIMESTAMP", Mode = "REQUIRED" },
            new() { Name = "kind", Type = "STRING" },
            new() { Name = "model", Type = "STRING" },
            new() { Name = "prompt_tokens", Type = "INTEGER" },
            new() { Name = "completion_tokens", Type = "INTEGER" },
            new() { Name = "latency_ms", Type = "INTEGER" },
            new() { Name = "cost", Type = "NUMERIC" },
            new() { Name = "ok", Type = "BOOLEAN" },
            new() { Name = "attrs", Type = "JSON" },
        ],
    },
    TimePartitioning = new TimePartitioning { Type = "DAY", Field = "ts" },
    Clustering = new Clustering { Fields = ["session_id"] },
};

/// <summary>One chat event as the warehouse stores it, serialised by source generation.</summary>
internal sealed record EventRow(
    [property: JsonPropertyName("event_id")] string EventId,
    [property: JsonPropertyName("session_id")] string SessionId,
    [property: JsonPropertyName("user_id")] string UserId,
    [property: JsonPropertyName("ts")] string Ts,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("latency_ms")] int LatencyMs,
    [property: JsonPropertyName("cost")] string Cost,
    [property: JsonPropertyName("ok")] bool Ok,
    [property: JsonPropertyName("attrs")] JsonObject Attrs)
{
    public static EventRow Create(int i, DateTimeOffset start) => new(
        $"e{i}", $"s{i % 5000}", $"u{i % 1000}",
        start.AddMilliseconds(i * 10L).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
        i % 2 == 0 ? "request" : "response", "gpt-4o-mini", i % 2000, i % 500, i * 7 % 3000, "0.00042", i % 17 != 0,
        new JsonObject { ["finish"] = "stop" });
}

[JsonSerializable(typeof(EventRow))]
internal sealed partial class BenchJson : JsonSerializerContext;
