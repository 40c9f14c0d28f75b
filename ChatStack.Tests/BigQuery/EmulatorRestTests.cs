using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.Tests.BigQuery;

[Collection(EmulatorCollection.Name)]
public sealed class EmulatorRestTests(EmulatorFixture emulator)
{
    private readonly BigQueryClient _client = emulator.CreateClient();

    private static Table EventsTable(string tableId) => new()
    {
        TableReference = new TableReference { TableId = tableId },
        Description = "chat events",
        Schema = new TableSchema
        {
            Fields =
            [
                new() { Name = "event_id", Type = "STRING", Mode = "REQUIRED" },
                new() { Name = "session_id", Type = "STRING" },
                new() { Name = "seq", Type = "INTEGER" },
                new() { Name = "ts", Type = "TIMESTAMP" },
                new() { Name = "cost", Type = "NUMERIC" },
                new() { Name = "ok", Type = "BOOLEAN" },
                new() { Name = "attrs", Type = "JSON" },
                new() { Name = "tags", Type = "STRING", Mode = "REPEATED" },
                new() { Name = "usage", Type = "RECORD", Fields = [new() { Name = "prompt_tokens", Type = "INTEGER" }, new() { Name = "model", Type = "STRING" }] },
            ],
        },
        TimePartitioning = new TimePartitioning { Type = "DAY", Field = "ts" },
        Clustering = new Clustering { Fields = ["session_id"] },
    };

    private async Task<string> NewDatasetAsync()
    {
        var id = EmulatorFixture.NewDatasetId();
        await _client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = id } });
        return id;
    }

    private async Task<List<Dictionary<string, object?>>> QueryAsync(string sql, long? maxResults = null)
    {
        var request = new QueryRequest { Query = sql, MaxResults = maxResults?.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var first = await _client.QueryAsync(new QueryRequest { Query = sql, DryRun = true });
        var rows = new List<Dictionary<string, object?>>();
        await foreach (var row in _client.QueryRowsAsync(request))
        {
            rows.Add(BigQueryRows.Decode(row, first.Schema!));
        }
        return rows;
    }

    [Fact]
    public async Task Health_IsOkWhenDuckDbIsOpen()
    {
        using var http = emulator.CreateRawClient();
        var response = await http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task DatasetInsertTwice_Returns409Duplicate()
    {
        var id = await NewDatasetAsync();
        var fetched = await _client.GetDatasetAsync(id);
        Assert.Equal($"{EmulatorFixture.Project}:{id}", fetched.Id);

        var error = await Assert.ThrowsAsync<BigQueryException>(() =>
            _client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = id } }));
        Assert.Equal(409, error.Code);
        Assert.Equal("ALREADY_EXISTS", error.Status);
        Assert.Equal("duplicate", error.Reason);
        Assert.Equal($"Already Exists: Dataset {EmulatorFixture.Project}:{id}", error.Message);
    }

    [Fact]
    public async Task TableInsertTwice_Returns409AndEchoesPartitioningAndClustering()
    {
        var dataset = await NewDatasetAsync();
        var created = await _client.CreateTableAsync(dataset, EventsTable("events"));
        Assert.Equal("TABLE", created.Type);

        var fetched = await _client.GetTableAsync(dataset, "events");
        Assert.Equal("DAY", fetched.TimePartitioning!.Type);
        Assert.Equal("ts", fetched.TimePartitioning.Field);
        Assert.Equal(["session_id"], fetched.Clustering!.Fields!);
        Assert.Equal("chat events", fetched.Description);
        Assert.Equal("0", fetched.NumRows);
        Assert.Equal("REQUIRED", fetched.Schema!.Fields![0].Mode);
        Assert.Equal("RECORD", fetched.Schema.Fields[8].Type);

        var error = await Assert.ThrowsAsync<BigQueryException>(() => _client.CreateTableAsync(dataset, EventsTable("events")));
        Assert.Equal(409, error.Code);
        Assert.Equal("duplicate", error.Reason);
    }

    [Fact]
    public async Task UnknownDatasetOrTable_Returns404NotFound()
    {
        var missingDataset = await Assert.ThrowsAsync<BigQueryException>(() => _client.GetDatasetAsync("no_such_dataset"));
        Assert.Equal((404, "NOT_FOUND", "notFound"), (missingDataset.Code, missingDataset.Status, missingDataset.Reason));

        var dataset = await NewDatasetAsync();
        var missingTable = await Assert.ThrowsAsync<BigQueryException>(() => _client.GetTableAsync(dataset, "nope"));
        Assert.Equal((404, "notFound"), (missingTable.Code, missingTable.Reason));
        Assert.Equal($"Not found: Table {EmulatorFixture.Project}:{dataset}.nope", missingTable.Message);

        var insert = await Assert.ThrowsAsync<BigQueryException>(() => _client.InsertAllAsync(dataset, "nope",
            new InsertAllRequest { Rows = [new InsertAllRow { Json = new JsonObject { ["a"] = 1 } }] }));
        Assert.Equal(404, insert.Code);

        var query = await Assert.ThrowsAsync<BigQueryException>(() => _client.QueryAsync(new QueryRequest { Query = "SELECT * FROM no_such_ds.t" }));
        Assert.Equal((404, "notFound"), (query.Code, query.Reason));
    }

    [Fact]
    public async Task InsertAll_BadRows_ReturnsBigQueryInsertErrorsAndWritesNothing()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        using var http = emulator.CreateRawClient();
        var body = """
            {"rows":[
              {"insertId":"1","json":{"event_id":"a","seq":1}},
              {"insertId":"2","json":{"event_id":"b","nope":1}},
              {"insertId":"3","json":{"session_id":"s"}},
              {"insertId":"4","json":{"event_id":"d","seq":"many"}}
            ]}
            """;
        var response = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/datasets/{dataset}/tables/events/insertAll",
            new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var expected = """
            {"kind":"bigquery#tableDataInsertAllResponse","insertErrors":[
            {"index":0,"errors":[{"reason":"stopped","location":"","debugInfo":"","message":""}]},
            {"index":1,"errors":[{"reason":"invalid","location":"nope","debugInfo":"","message":"no such field: nope."}]},
            {"index":2,"errors":[{"reason":"invalid","location":"event_id","debugInfo":"","message":"Missing required field: event_id."}]},
            {"index":3,"errors":[{"reason":"invalid","location":"seq","debugInfo":"","message":"Cannot convert value to integer (bad value): many"}]}]}
            """;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(await response.Content.ReadAsStringAsync())));
        Assert.Equal("0", (await _client.GetTableAsync(dataset, "events")).NumRows);
    }

    [Fact]
    public async Task InsertAll_SkipInvalidRowsAndIgnoreUnknownValues_WriteTheValidRows()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        var skipped = await _client.InsertAllAsync(dataset, "events", new InsertAllRequest
        {
            SkipInvalidRows = true,
            Rows =
            [
                new() { Json = new JsonObject { ["event_id"] = "ok1", ["seq"] = 1 } },
                new() { Json = new JsonObject { ["event_id"] = "bad", ["seq"] = "x" } },
                new() { Json = new JsonObject { ["event_id"] = "ok2", ["usage"] = new JsonObject { ["prompt_tokens"] = "12", ["model"] = "gpt" } } },
            ],
        });
        var error = Assert.Single(skipped.InsertErrors!);
        Assert.Equal(1, error.Index);
        Assert.Equal("invalid", error.Errors![0].Reason);

        var ignored = await _client.InsertAllAsync(dataset, "events", new InsertAllRequest
        {
            IgnoreUnknownValues = true,
            Rows = [new() { Json = new JsonObject { ["event_id"] = "ok3", ["extra"] = true } }],
        });
        Assert.Null(ignored.InsertErrors);

        var rows = await QueryAsync($"SELECT event_id, usage.prompt_tokens AS tokens FROM {dataset}.events ORDER BY event_id");
        Assert.Equal(["ok1", "ok2", "ok3"], rows.Select(r => (string)r["event_id"]!));
        Assert.Equal(12L, rows[1]["tokens"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task InsertAll_RoundTripsEveryScalarType_FlatAndNested(bool nested)
    {
        var dataset = await NewDatasetAsync();
        List<TableFieldSchema> scalars =
        [
            new() { Name = "s", Type = "STRING" }, new() { Name = "i", Type = "INTEGER" }, new() { Name = "f", Type = "FLOAT" },
            new() { Name = "n", Type = "NUMERIC" }, new() { Name = "b", Type = "BOOLEAN" }, new() { Name = "ts", Type = "TIMESTAMP" },
            new() { Name = "d", Type = "DATE" }, new() { Name = "dt", Type = "DATETIME" }, new() { Name = "t", Type = "TIME" },
            new() { Name = "j", Type = "JSON" },
        ];
        // With a REPEATED column the row takes the staging path; without, the typed appender.
        List<TableFieldSchema> fields = nested ? [.. scalars, new() { Name = "tags", Type = "STRING", Mode = "REPEATED" }] : scalars;
        await _client.CreateTableAsync(dataset, new Table { TableReference = new() { TableId = "all" }, Schema = new TableSchema { Fields = fields } });
        var row = JsonNode.Parse("""
            {"s":"x","i":"-42","f":1.5,"n":"123.456789012","b":"true","ts":"2024-03-04 05:06:07.123456 UTC",
             "d":"2024-03-04","dt":"2024-03-04T05:06:07.5","t":"05:06:07","j":{"k":[1,2]}}
            """)!.AsObject();
        var response = await _client.InsertAllAsync(dataset, "all", new InsertAllRequest { Rows = [new() { Json = row }] });
        Assert.Null(response.InsertErrors);

        var result = await _client.QueryAsync(new QueryRequest { Query = $"SELECT s, i, f, n, b, ts, d, dt, t, TO_JSON_STRING(j) AS j FROM {dataset}.all" });
        var cells = result.Rows![0]["f"]!.AsArray().Select(c => c!["v"]!.GetValue<string>()).ToList();
        Assert.Equal(["x", "-42", "1.5", "123.456789012", "true", "1.709528767123456E9", "2024-03-04", "2024-03-04T05:06:07.500000", "05:06:07", """{"k":[1,2]}"""], cells);
    }

    [Fact]
    public async Task InsertAll_DuplicateInsertIds_WriteOneRow()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        var row = new JsonObject { ["event_id"] = "e1", ["ts"] = "2024-05-01T12:00:00Z" };
        await _client.InsertAllAsync(dataset, "events", new InsertAllRequest
        {
            Rows = [new() { InsertId = "same", Json = row.DeepClone().AsObject() }, new() { InsertId = "same", Json = row.DeepClone().AsObject() }],
        });
        await _client.InsertAllAsync(dataset, "events", new InsertAllRequest { Rows = [new() { InsertId = "same", Json = row.DeepClone().AsObject() }] });

        var count = await QueryAsync($"SELECT COUNT(*) AS n FROM `{EmulatorFixture.Project}.{dataset}.events`");
        Assert.Equal(1L, count[0]["n"]);
    }

    [Fact]
    public async Task InsertAllTyped_SerialisesRowsBySourceGeneration()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        InsertAllRow<TypedEvent>[] rows = [new("t1", new TypedEvent("a", 1)), new("t2", new TypedEvent("b", 2)), new("t1", new TypedEvent("a", 1))];

        var response = await _client.InsertAllAsync(dataset, "events", rows, TestJson.Default.TypedEvent);

        Assert.Null(response.InsertErrors);
        var result = await QueryAsync($"SELECT event_id, seq FROM {dataset}.events ORDER BY seq");
        Assert.Equal([("a", 1L), ("b", 2L)], result.Select(r => ((string)r["event_id"]!, (long)r["seq"]!)));
    }

    [Fact]
    public async Task InsertAll_RetriedAfterLostResponse_KeepsInsertIdsAndWritesOnce()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        // The first attempt reaches the emulator, but its answer is replaced by a 503: the client must resend.
        var handler = new LoseFirstResponseHandler { InnerHandler = new HttpClientHandler() };
        var client = emulator.CreateClient(handler);
        var request = new InsertAllRequest { Rows = [.. Enumerable.Range(0, 3).Select(i => new InsertAllRow { Json = new JsonObject { ["event_id"] = $"r{i}" } })] };

        var response = await client.InsertAllAsync(dataset, "events", request);

        Assert.Null(response.InsertErrors);
        Assert.Equal(2, handler.Attempts);
        Assert.Equal(handler.Bodies[0], handler.Bodies[1]);
        Assert.Equal("3", (await _client.GetTableAsync(dataset, "events")).NumRows);
    }

    private sealed class LoseFirstResponseHandler : DelegatingHandler
    {
        public int Attempts { get; private set; }
        public List<string> Bodies { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Bodies.Add(await request.Content!.ReadAsStringAsync(cancellationToken));
            var response = await base.SendAsync(request, cancellationToken);
            if (++Attempts > 1) return response;
            response.Dispose();
            return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)
            {
                Content = new StringContent("""{"error":{"code":503,"message":"backend","status":"UNAVAILABLE","errors":[{"reason":"backendError"}]}}"""),
            };
        }
    }

    [Fact]
    public async Task Query_PagesThrough5000Rows()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        for (var batch = 0; batch < 10; batch++)
        {
            var rows = Enumerable.Range(batch * 500, 500)
                .Select(i => new InsertAllRow { Json = new JsonObject { ["event_id"] = $"e{i}", ["seq"] = i } })
                .ToList();
            var result = await _client.InsertAllAsync(dataset, "events", new InsertAllRequest { Rows = rows });
            Assert.Null(result.InsertErrors);
        }

        var first = await _client.QueryAsync(new QueryRequest { Query = $"SELECT seq FROM {dataset}.events ORDER BY seq", MaxResults = "700" });
        Assert.Equal("5000", first.TotalRows);
        Assert.Equal(700, first.Rows!.Count);
        Assert.NotNull(first.PageToken);

        var pages = 1;
        var seen = first.Rows.Select(r => long.Parse(r["f"]![0]!["v"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var token = first.PageToken;
        while (token is not null)
        {
            var page = await _client.GetQueryResultsAsync(first.JobReference!, token, 700);
            seen.AddRange(page.Rows!.Select(r => long.Parse(r["f"]![0]!["v"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture)));
            token = page.PageToken;
            pages++;
        }
        Assert.Equal(8, pages);
        Assert.Equal(Enumerable.Range(0, 5000).Select(i => (long)i), seen);
    }

    [Fact]
    public async Task TabledataList_PagesRowsWithTheTableSchema()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        await _client.InsertAllAsync(dataset, "events", new InsertAllRequest
        {
            Rows = [.. Enumerable.Range(0, 5).Select(i => new InsertAllRow { Json = new JsonObject { ["event_id"] = $"e{i}", ["seq"] = i, ["tags"] = new JsonArray("t") } })],
        });
        using var http = emulator.CreateRawClient();
        var first = JsonNode.Parse(await http.GetStringAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/datasets/{dataset}/tables/events/data?maxResults=3"))!;
        Assert.Equal(("5", 3, "3"), (first["totalRows"]!.GetValue<string>(), first["rows"]!.AsArray().Count, first["pageToken"]!.GetValue<string>()));
        Assert.Equal("t", first["rows"]![0]!["f"]![7]!["v"]![0]!["v"]!.GetValue<string>());

        var rest = JsonNode.Parse(await http.GetStringAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/datasets/{dataset}/tables/events/data?maxResults=3&pageToken=3"))!;
        Assert.Equal(2, rest["rows"]!.AsArray().Count);
        Assert.Null(rest["pageToken"]);
    }

    [Fact]
    public async Task MalformedJson_Returns400InBigQueryShape()
    {
        using var http = emulator.CreateRawClient();
        var response = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/datasets",
            new StringContent("{\"datasetReference\": {", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(400, error["code"]!.GetValue<int>());
        Assert.Equal("INVALID_ARGUMENT", error["status"]!.GetValue<string>());
        Assert.Equal("invalid", error["errors"]![0]!["reason"]!.GetValue<string>());
        Assert.StartsWith("Invalid JSON payload received.", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequestOver10MB_Returns400PayloadTooLargeAndWritesNothing()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        var big = new string('x', 1024 * 1024);
        var rows = Enumerable.Range(0, 11).Select(i => new InsertAllRow { Json = new JsonObject { ["event_id"] = $"e{i}", ["session_id"] = big } }).ToList();

        var error = await Assert.ThrowsAsync<BigQueryException>(() => _client.InsertAllAsync(dataset, "events", new InsertAllRequest { Rows = rows }));

        Assert.Equal((400, "INVALID_ARGUMENT", "badRequest"), (error.Code, error.Status, error.Reason));
        Assert.Equal("Request payload size exceeds the limit: 10485760 bytes.", error.Message);
        Assert.Equal("0", (await _client.GetTableAsync(dataset, "events")).NumRows);
    }

    [Theory]
    [InlineData("SELEC 1")]
    [InlineData("SELECT no_such_function(1)")]
    [InlineData("SELECT * FROM t FOR SYSTEM_TIME AS OF CURRENT_TIMESTAMP()")]
    [InlineData("SELECT 1; SELECT 2")]
    [InlineData("SELECT 'unclosed")]
    public async Task InvalidSql_Returns400InvalidQuery(string sql)
    {
        var error = await Assert.ThrowsAsync<BigQueryException>(() => _client.QueryAsync(new QueryRequest { Query = sql }));
        Assert.Equal((400, "INVALID_ARGUMENT", "invalidQuery"), (error.Code, error.Status, error.Reason));
    }

    [Fact]
    public async Task UnsupportedConstruct_IsNamedInTheError()
    {
        var error = await Assert.ThrowsAsync<BigQueryException>(() =>
            _client.QueryAsync(new QueryRequest { Query = "SELECT * FROM x.t FOR SYSTEM_TIME AS OF CURRENT_TIMESTAMP()" }));
        Assert.Contains("FOR SYSTEM_TIME AS OF", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LegacySql_IsRefusedWithInvalidQuery()
    {
        using var http = emulator.CreateRawClient();
        var response = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/queries",
            new StringContent("""{"query":"SELECT 1"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("useLegacySql", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DryRun_ReturnsSchemaWithoutRunning()
    {
        var response = await _client.QueryAsync(new QueryRequest { Query = "SELECT 1 AS a, 'x' AS b, CURRENT_TIMESTAMP() AS t", DryRun = true });
        Assert.Null(response.Rows);
        Assert.Equal(["INTEGER", "STRING", "TIMESTAMP"], response.Schema!.Fields!.Select(f => f.Type!));
    }

    [Fact]
    public async Task Division_TakesACaseExpressionAsAWholeOperandOnEitherSide()
    {
        var row = Assert.Single(await QueryAsync("SELECT CASE WHEN TRUE THEN 3 ELSE 0 END / 2 AS half, 6 / CASE WHEN FALSE THEN 1 ELSE 4 END AS quarter"));
        Assert.Equal((1.5, 1.5), (row["half"], row["quarter"]));
    }

    [Fact]
    public async Task QueryParameters_AndTimestampEncodings()
    {
        var request = new QueryRequest
        {
            Query = "SELECT @n + 1 AS n, @s AS s, @ts AS ts, ARRAY_LENGTH(@xs) AS len",
            QueryParameters =
            [
                new() { Name = "n", ParameterType = new() { Type = "INT64" }, ParameterValue = new() { Value = "41" } },
                new() { Name = "s", ParameterType = new() { Type = "STRING" }, ParameterValue = new() { Value = "it's" } },
                new() { Name = "ts", ParameterType = new() { Type = "TIMESTAMP" }, ParameterValue = new() { Value = "2024-01-01 00:00:00.5 UTC" } },
                new() { Name = "xs", ParameterType = new() { Type = "ARRAY", ArrayType = new() { Type = "INT64" } }, ParameterValue = new() { ArrayValues = [new() { Value = "1" }, new() { Value = "2" }] } },
            ],
        };
        var asFloat = await _client.QueryAsync(request);
        var cells = asFloat.Rows![0]["f"]!.AsArray().Select(c => c!["v"]!.GetValue<string>()).ToList();
        Assert.Equal(["42", "it's", "1.7040672005E9", "2"], cells);

        request.FormatOptions = new DataFormatOptions { UseInt64Timestamp = true };
        var asInt = await _client.QueryAsync(request);
        Assert.Equal("1704067200500000", asInt.Rows![0]["f"]![2]!["v"]!.GetValue<string>());
    }

    [Fact]
    public async Task TablePatch_AddsNullableColumnsAndRejectsRequiredOrPartitioningChanges()
    {
        var dataset = await NewDatasetAsync();
        var table = await _client.CreateTableAsync(dataset, EventsTable("events"));
        var fields = table.Schema!.Fields!.Append(new TableFieldSchema { Name = "latency_ms", Type = "INTEGER", Mode = "NULLABLE" }).ToList();

        var patched = await _client.PatchTableAsync(dataset, "events", new Table
        {
            Schema = new TableSchema { Fields = fields },
            Description = "v2",
            Clustering = new Clustering { Fields = ["session_id", "event_id"] },
        });
        Assert.Equal("v2", patched.Description);
        Assert.Equal(["session_id", "event_id"], patched.Clustering!.Fields!);
        Assert.Equal("latency_ms", patched.Schema!.Fields![^1].Name);
        await _client.InsertAllAsync(dataset, "events", new InsertAllRequest { Rows = [new() { Json = new JsonObject { ["event_id"] = "a", ["latency_ms"] = 7 } }] });
        Assert.Equal(7L, (await QueryAsync($"SELECT latency_ms FROM {dataset}.events"))[0]["latency_ms"]);

        var required = await Assert.ThrowsAsync<BigQueryException>(() => _client.PatchTableAsync(dataset, "events", new Table
        {
            Schema = new TableSchema { Fields = [.. fields, new TableFieldSchema { Name = "must", Type = "STRING", Mode = "REQUIRED" }] },
        }));
        Assert.Equal((400, "invalid"), (required.Code, required.Reason));

        var partitioning = await Assert.ThrowsAsync<BigQueryException>(() => _client.PatchTableAsync(dataset, "events", new Table
        {
            TimePartitioning = new TimePartitioning { Type = "HOUR", Field = "ts" },
        }));
        Assert.Equal((400, "invalid"), (partitioning.Code, partitioning.Reason));
        Assert.Equal("DAY", (await _client.GetTableAsync(dataset, "events")).TimePartitioning!.Type);
    }

    [Fact]
    public async Task View_WrittenInGoogleSql_IsTranslatedQueriedAndPatched()
    {
        var dataset = await NewDatasetAsync();
        await _client.CreateTableAsync(dataset, EventsTable("events"));
        await _client.InsertAllAsync(dataset, "events", new InsertAllRequest
        {
            Rows =
            [
                new() { Json = new JsonObject { ["event_id"] = "1", ["session_id"] = "s1", ["ts"] = "2024-01-01T00:00:00Z", ["ok"] = true, ["attrs"] = new JsonObject { ["model"] = "m1" } } },
                new() { Json = new JsonObject { ["event_id"] = "2", ["session_id"] = "s1", ["ts"] = "2024-01-01T00:00:01.900Z", ["ok"] = false, ["attrs"] = new JsonObject { ["model"] = "m2" } } },
            ],
        });
        var viewSql = $"""
            SELECT session_id,
                   COUNTIF(ok) AS ok_events,
                   TIMESTAMP_DIFF(MAX(ts), MIN(ts), SECOND) AS duration_s,
                   ARRAY_AGG(JSON_VALUE(attrs, '$.model') IGNORE NULLS ORDER BY ts DESC LIMIT 1)[OFFSET(0)] AS last_model
            FROM `{EmulatorFixture.Project}.{dataset}.events`
            GROUP BY session_id
            """;
        var view = await _client.CreateTableAsync(dataset, new Table { TableReference = new() { TableId = "sessions" }, View = new ViewDefinition { Query = viewSql, UseLegacySql = false } });
        Assert.Equal("VIEW", view.Type);
        Assert.Equal(["session_id", "ok_events", "duration_s", "last_model"], view.Schema!.Fields!.Select(f => f.Name!));

        var row = Assert.Single(await QueryAsync($"SELECT * FROM {dataset}.sessions"));
        Assert.Equal(1L, row["ok_events"]);
        Assert.Equal(1L, row["duration_s"]);
        Assert.Equal("m2", row["last_model"]);

        var patched = await _client.PatchTableAsync(dataset, "sessions", new Table { View = new ViewDefinition { Query = $"SELECT COUNT(*) AS n FROM {dataset}.events" } });
        Assert.Equal(["n"], patched.Schema!.Fields!.Select(f => f.Name!));
        Assert.Equal(2L, (await QueryAsync($"SELECT n FROM {dataset}.sessions"))[0]["n"]);
    }

    [Fact]
    public async Task Ddl_CreateTableWithStructPartitionClusterAndOptions_IsRegistered()
    {
        var dataset = await NewDatasetAsync();
        await _client.QueryAsync(new QueryRequest
        {
            Query = $"""
                CREATE TABLE IF NOT EXISTS `{EmulatorFixture.Project}.{dataset}.turns` (
                  turn_id STRING NOT NULL,
                  ts TIMESTAMP,
                  usage STRUCT<prompt INT64, completion INT64>,
                  tags ARRAY<STRING>,
                  cost NUMERIC
                )
                PARTITION BY DATE(ts)
                CLUSTER BY turn_id
                OPTIONS (description = "one row per turn")
                """,
        });
        var table = await _client.GetTableAsync(dataset, "turns");
        Assert.Equal(("DAY", "ts"), (table.TimePartitioning!.Type, table.TimePartitioning.Field));
        Assert.Equal(["turn_id"], table.Clustering!.Fields!);
        Assert.Equal("one row per turn", table.Description);
        Assert.Equal("REQUIRED", table.Schema!.Fields![0].Mode);
        Assert.Equal(("RECORD", 2), (table.Schema.Fields[2].Type, table.Schema.Fields[2].Fields!.Count));
        Assert.Equal("REPEATED", table.Schema.Fields[3].Mode);

        await _client.InsertAllAsync(dataset, "turns", new InsertAllRequest
        {
            Rows = [new() { Json = JsonNode.Parse("""{"turn_id":"t","usage":{"prompt":3,"completion":4},"tags":["a"],"cost":"0.000000001"}""")!.AsObject() }],
        });
        var row = Assert.Single(await QueryAsync($"SELECT usage.prompt + usage.completion AS total, tags[OFFSET(0)] AS tag, cost FROM {dataset}.turns"));
        Assert.Equal((7L, "a", 0.000000001m), ((long)row["total"]!, (string)row["tag"]!, (decimal)row["cost"]!));
    }

    [Fact]
    public async Task Ddl_CreateOrReplaceThatFails_LeavesTheOriginalTableOrViewAndItsRows()
    {
        var dataset = await NewDatasetAsync();
        foreach (var id in new[] { "t", "u" })
        {
            await _client.QueryAsync(new QueryRequest { Query = $"CREATE TABLE {dataset}.{id} (a STRING, ts TIMESTAMP) PARTITION BY DATE(ts)" });
            await _client.QueryAsync(new QueryRequest { Query = $"INSERT INTO {dataset}.{id} (a) VALUES ('kept')" });
        }
        await _client.QueryAsync(new QueryRequest { Query = $"CREATE VIEW {dataset}.v AS SELECT a FROM {dataset}.u" });

        var table = await Assert.ThrowsAsync<BigQueryException>(() =>
            _client.QueryAsync(new QueryRequest { Query = $"CREATE OR REPLACE TABLE {dataset}.t (b STRING) PARTITION BY DATE(missing)" }));
        var view = await Assert.ThrowsAsync<BigQueryException>(() =>
            _client.QueryAsync(new QueryRequest { Query = $"CREATE OR REPLACE VIEW {dataset}.v AS SELECT no_such_column FROM {dataset}.u" }));

        Assert.Equal((400, "invalid"), (table.Code, table.Reason));
        Assert.Equal((400, "invalidQuery"), (view.Code, view.Reason));
        var kept = await _client.GetTableAsync(dataset, "t");
        Assert.Equal(("DAY", "ts"), (kept.TimePartitioning!.Type, kept.TimePartitioning.Field));
        Assert.Equal("kept", Assert.Single(await QueryAsync($"SELECT a FROM {dataset}.t"))["a"]);
        Assert.Equal("a", Assert.Single((await _client.GetTableAsync(dataset, "v")).Schema!.Fields!).Name);
        Assert.Equal("kept", Assert.Single(await QueryAsync($"SELECT a FROM {dataset}.v"))["a"]);

        // A replacement that succeeds still replaces.
        await _client.QueryAsync(new QueryRequest { Query = $"CREATE OR REPLACE TABLE {dataset}.t (b STRING)" });
        Assert.Equal("b", Assert.Single((await _client.GetTableAsync(dataset, "t")).Schema!.Fields!).Name);
        Assert.Empty(await QueryAsync($"SELECT b FROM {dataset}.t"));
    }

    private static StringContent JobBody(string jobId, string sql) => new(new JsonObject
    {
        ["jobReference"] = new JsonObject { ["projectId"] = EmulatorFixture.Project, ["jobId"] = jobId },
        ["configuration"] = new JsonObject { ["query"] = new JsonObject { ["query"] = sql, ["useLegacySql"] = false } },
    }.ToJsonString(), Encoding.UTF8, "application/json");

    [Fact]
    public async Task JobsInsert_ThenGetAndGetQueryResults_AsClientLibrariesDo()
    {
        using var http = emulator.CreateRawClient();
        var jobId = "job_" + Guid.NewGuid().ToString("N");
        var insert = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/jobs", JobBody(jobId, "SELECT x FROM UNNEST(GENERATE_ARRAY(1, 25)) AS x"));
        Assert.Equal(HttpStatusCode.OK, insert.StatusCode);
        var job = JsonSerializer.Deserialize(await insert.Content.ReadAsStringAsync(), BigQueryJsonContext.Default.Job)!;
        Assert.Equal("DONE", job.Status!.State);
        Assert.Equal(jobId, job.JobReference!.JobId);

        var got = await http.GetStringAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/jobs/{jobId}");
        Assert.Equal("DONE", JsonNode.Parse(got)!["status"]!["state"]!.GetValue<string>());

        var results = await _client.GetQueryResultsAsync(new JobReference { ProjectId = EmulatorFixture.Project, JobId = jobId }, maxResults: 10);
        Assert.Equal(("25", 10), (results.TotalRows, results.Rows!.Count));
        var rest = await _client.GetQueryResultsAsync(new JobReference { ProjectId = EmulatorFixture.Project, JobId = jobId }, results.PageToken, 100);
        Assert.Equal("25", rest.Rows!.Last()["f"]![0]!["v"]!.GetValue<string>());
        Assert.Null(rest.PageToken);

        var duplicate = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/jobs", JobBody(jobId, "SELECT 1"));
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
    }

    [Fact]
    public async Task FailedQueryJob_ReportsErrorResult_AndGetQueryResultsAnswers400()
    {
        using var http = emulator.CreateRawClient();
        var jobId = "job_" + Guid.NewGuid().ToString("N");
        var insert = await http.PostAsync($"/bigquery/v2/projects/{EmulatorFixture.Project}/jobs", JobBody(jobId, "SELECT 1/0"));
        var job = JsonNode.Parse(await insert.Content.ReadAsStringAsync())!;
        Assert.Equal("invalidQuery", job["status"]!["errorResult"]!["reason"]!.GetValue<string>());

        var error = await Assert.ThrowsAsync<BigQueryException>(() => _client.GetQueryResultsAsync(new JobReference { JobId = jobId }));
        Assert.Equal((400, "invalidQuery"), (error.Code, error.Reason));
        Assert.Contains("division by zero", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownRoute_Returns404InBigQueryShape()
    {
        using var http = emulator.CreateRawClient();
        var response = await http.GetAsync("/bigquery/v2/projects/p/models");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("notFound", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["errors"]![0]!["reason"]!.GetValue<string>());
    }
}

public sealed record TypedEvent(
    [property: System.Text.Json.Serialization.JsonPropertyName("event_id")] string EventId,
    [property: System.Text.Json.Serialization.JsonPropertyName("seq")] long Seq);

[System.Text.Json.Serialization.JsonSerializable(typeof(TypedEvent))]
public sealed partial class TestJson : System.Text.Json.Serialization.JsonSerializerContext;
