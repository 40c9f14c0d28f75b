using System.Text.Json.Nodes;
using ChatStack.Contracts;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Provisioning;

/// <summary>The warehouse half of the provisioner, against the BigQuery emulator; every test in a project of its own.</summary>
[Collection(StackCollection.Name)]
public sealed class WarehouseProvisioningTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private const string Dataset = ResourceNames.Dataset;
    private readonly string _project = $"wh-{Guid.NewGuid():N}"[..20];
    private EmulatorClients? _clients;

    private EmulatorClients Clients => _clients ??= new EmulatorClients(stack, _project);

    private IBigQueryClient BigQuery => Clients.BigQuery;

    public void Dispose() => _clients?.Dispose();

    private async Task<(int ExitCode, string Output)> Run(params string[] args)
    {
        var (exitCode, stdout, stderr) = await Clients.ProvisionAsync(args);
        output.WriteLine($"$ provision {string.Join(' ', args)} -> {exitCode}\n{stdout}{stderr}");
        return (exitCode, stdout + stderr);
    }

    [Fact]
    public async Task Tables_are_created_partitioned_and_clustered_and_views_as_views()
    {
        Assert.Equal(0, (await Run("provision")).ExitCode);

        var events = await BigQuery.GetTableAsync(Dataset, ResourceNames.ChatEventsTable);
        Assert.Equal("DAY", events.TimePartitioning?.Type);
        Assert.Equal("event_timestamp", events.TimePartitioning?.Field);
        Assert.Equal(["session_id", "user_id", "event_type"], events.Clustering?.Fields);
        Assert.Contains(events.Schema!.Fields!, f => f.Name == "metadata" && f.Type == "JSON");

        var tools = await BigQuery.GetTableAsync(Dataset, ResourceNames.ToolInvocationsTable);
        Assert.Equal("started_at", tools.TimePartitioning?.Field);
        Assert.Equal(["tool_name", "status", "session_id"], tools.Clustering?.Fields);

        var view = await BigQuery.GetTableAsync(Dataset, ResourceNames.SessionsSummaryView);
        Assert.Equal("VIEW", view.Type);
        Assert.Contains($"`{_project}.{Dataset}.chat_events`", view.View?.Query);
    }

    [Fact]
    public async Task A_table_with_another_partitioning_is_reported_and_kept()
    {
        await BigQuery.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = Dataset }, Location = "US" });
        await BigQuery.CreateTableAsync(Dataset, new Table
        {
            TableReference = new TableReference { TableId = ResourceNames.ToolInvocationsTable },
            Schema = new TableSchema { Fields = [new() { Name = "invocation_id", Type = "STRING", Mode = "REQUIRED" }, new() { Name = "ended_at", Type = "TIMESTAMP" }] },
            TimePartitioning = new TimePartitioning { Type = "DAY", Field = "ended_at" },
        });

        var (exitCode, text) = await Run("provision");

        Assert.Equal(3, exitCode);
        Assert.Contains("  ! bigquery.table         chat_analytics.tool_invocations          incompatible", text);
        Assert.Contains("      timePartitioning: DAY(ended_at) -> DAY(started_at)", text);
        var kept = await BigQuery.GetTableAsync(Dataset, ResourceNames.ToolInvocationsTable);
        Assert.Equal("ended_at", kept.TimePartitioning?.Field);
        // The views read that table, so they wait for it; everything else converged.
        Assert.Contains("  - bigquery.view          chat_analytics.v_tool_usage_summary      blocked", text);
        Assert.Contains("      dependsOn: chat_analytics.tool_invocations -> compatible", text);
        Assert.Contains("Blocked by them: 2.", text);
        Assert.Equal("TABLE", (await BigQuery.GetTableAsync(Dataset, ResourceNames.ChatEventsTable)).Type);
    }

    [Fact]
    public async Task A_missing_column_and_an_edited_view_are_updated_in_place()
    {
        await BigQuery.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = Dataset }, Location = "US" });
        await BigQuery.CreateTableAsync(Dataset, new Table
        {
            TableReference = new TableReference { TableId = ResourceNames.ChatEventsTable },
            Schema = new TableSchema
            {
                Fields =
                [
                    new() { Name = "event_id", Type = "STRING", Mode = "REQUIRED" },
                    new() { Name = "session_id", Type = "STRING", Mode = "REQUIRED" },
                    new() { Name = "user_id", Type = "STRING", Mode = "REQUIRED" },
                    new() { Name = "event_type", Type = "STRING", Mode = "REQUIRED" },
                    new() { Name = "event_timestamp", Type = "TIMESTAMP", Mode = "REQUIRED" },
                    new() { Name = "ingested_at", Type = "TIMESTAMP", Mode = "REQUIRED" },
                ],
            },
            TimePartitioning = new TimePartitioning { Type = "DAY", Field = "event_timestamp" },
            Clustering = new Clustering { Fields = ["session_id"] },
        });
        await BigQuery.CreateTableAsync(Dataset, new Table
        {
            TableReference = new TableReference { TableId = ResourceNames.ToolUsageSummaryView },
            View = new ViewDefinition { Query = "SELECT 1 AS x", UseLegacySql = false },
        });

        var plan = await Run("provision", "--dry-run");
        Assert.Equal(2, plan.ExitCode);
        Assert.Contains("  ~ bigquery.table         chat_analytics.chat_events               update", plan.Output);
        Assert.Contains("      schema.content_sha256: (none) -> STRING NULLABLE", plan.Output);
        Assert.Contains("      clustering: session_id -> session_id,user_id,event_type", plan.Output);
        Assert.Contains("  ~ bigquery.view          chat_analytics.v_tool_usage_summary      update", plan.Output);

        Assert.Equal(0, (await Run("provision")).ExitCode);
        var events = await BigQuery.GetTableAsync(Dataset, ResourceNames.ChatEventsTable);
        Assert.Contains(events.Schema!.Fields!, f => f.Name == "content_sha256" && f.Mode == "NULLABLE");
        Assert.Equal(["session_id", "user_id", "event_type"], events.Clustering?.Fields);
        Assert.Contains("APPROX_QUANTILES", (await BigQuery.GetTableAsync(Dataset, ResourceNames.ToolUsageSummaryView)).View?.Query);
        Assert.Contains("unchanged 9", (await Run("provision")).Output);
    }

    [Fact]
    public async Task A_column_whose_description_changed_is_planned_as_an_update_and_described_anew()
    {
        // A warehouse provisioned when content_sha256 was a plain SHA-256, and described so.
        const string old = "Hex SHA-256 of the message text, always present for messages.";
        Assert.Equal(0, (await Run("provision")).ExitCode);
        var table = await BigQuery.GetTableAsync(Dataset, ResourceNames.ChatEventsTable);
        var fields = table.Schema!.Fields!;
        fields.Single(f => f.Name == "content_sha256").Description = old;
        await BigQuery.PatchTableAsync(Dataset, ResourceNames.ChatEventsTable, new Table { Schema = new TableSchema { Fields = fields } });

        var plan = await Run("provision", "--dry-run");
        Assert.Equal(2, plan.ExitCode);
        Assert.Contains("  ~ bigquery.table         chat_analytics.chat_events               update", plan.Output);
        Assert.Contains($"      schema.content_sha256.description: {old} -> Hex HMAC-SHA256 of the message text under the chat API's secret key", plan.Output);
        // Only that column differs.
        Assert.Single(plan.Output.Split('\n'), line => line.Contains(".description:"));

        Assert.Equal(0, (await Run("provision")).ExitCode);
        var described = (await BigQuery.GetTableAsync(Dataset, ResourceNames.ChatEventsTable)).Schema!.Fields!;
        Assert.StartsWith("Hex HMAC-SHA256", described.Single(f => f.Name == "content_sha256").Description);
        Assert.Equal(fields.Select(f => (f.Name, f.Type, f.Mode)), described.Select(f => (f.Name, f.Type, f.Mode)));
        Assert.Contains("unchanged 9", (await Run("provision")).Output);
    }

    [Fact]
    public async Task Summary_views_count_each_event_once_whatever_the_duplicates()
    {
        Assert.Equal(0, (await Run("provision")).ExitCode);
        var t0 = new DateTimeOffset(2026, 11, 20, 10, 0, 0, TimeSpan.Zero);
        JsonObject Event(string id, string session, string type, DateTimeOffset at, int prompt = 0, int completion = 0, int budgetMax = 1000, int remaining = 1000, string model = "gpt-4o") => new()
        {
            ["event_id"] = id, ["session_id"] = session, ["user_id"] = "user-" + session, ["event_type"] = type,
            ["role"] = type == "user_message" ? "user" : "assistant", ["model"] = model,
            ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion,
            ["budget_max"] = budgetMax, ["budget_remaining"] = remaining,
            ["event_timestamp"] = at.ToString("O"), ["ingested_at"] = at.AddSeconds(1).ToString("O"),
        };
        var rows = new[]
        {
            Event("e1", "s1", "user_message", t0),
            Event("e2", "s1", "assistant_message", t0.AddSeconds(5), prompt: 100, completion: 50, remaining: 850),
            Event("e3", "s1", "user_message", t0.AddMinutes(1)),
            Event("e4", "s1", "assistant_message", t0.AddMinutes(1).AddSeconds(4), prompt: 300, completion: 100, remaining: 600),
            // At-least-once delivery: e4 again, under another insertId so the streaming dedup does not catch it.
            Event("e4", "s1", "assistant_message", t0.AddMinutes(1).AddSeconds(4), prompt: 300, completion: 100, remaining: 600),
            Event("e5", "s2", "user_message", t0.AddHours(1)),
            Event("e6", "s2", "assistant_message", t0.AddHours(1).AddSeconds(2), prompt: 10, completion: 20, remaining: 970, model: "some-unpriced-model"),
        };
        // e7, s2's second assistant message, was dead-lettered: it never reaches the table and must not be counted.
        await BigQuery.InsertAllAsync(Dataset, ResourceNames.ChatEventsTable, new InsertAllRequest
        {
            Rows = [.. rows.Select(r => new InsertAllRow { InsertId = Guid.NewGuid().ToString("N"), Json = r })],
        });
        JsonObject Tool(string id, string tool, string status, int durationMs, DateTimeOffset at) => new()
        {
            ["invocation_id"] = id, ["session_id"] = "s1", ["tool_name"] = tool, ["status"] = status,
            ["argument_tokens"] = 5, ["result_tokens"] = 7, ["duration_ms"] = durationMs,
            ["started_at"] = at.ToString("O"), ["ended_at"] = at.AddMilliseconds(durationMs).ToString("O"), ["ingested_at"] = at.AddSeconds(2).ToString("O"),
        };
        var tools = Enumerable.Range(1, 20).Select(i => Tool($"t{i}", "calculator", i % 10 == 0 ? "error" : "ok", i * 10, t0.AddSeconds(i)))
            .Append(Tool("t1", "calculator", "ok", 10, t0.AddSeconds(1))) // duplicate delivery
            .Append(Tool("c1", "current_time", "ok", 3, t0));
        await BigQuery.InsertAllAsync(Dataset, ResourceNames.ToolInvocationsTable, new InsertAllRequest
        {
            Rows = [.. tools.Select(r => new InsertAllRow { InsertId = Guid.NewGuid().ToString("N"), Json = r })],
        });

        var sessions = await Query($"SELECT * FROM `{_project}.{Dataset}.{ResourceNames.SessionsSummaryView}` ORDER BY session_id");
        Assert.Equal(2, sessions.Count);
        var s1 = sessions[0];
        Assert.Equal("s1", s1["session_id"]);
        Assert.Equal("user-s1", s1["user_id"]);
        Assert.Equal(2L, s1["user_messages"]);
        Assert.Equal(2L, s1["assistant_messages"]);
        Assert.Equal(400L, s1["prompt_tokens"]);
        Assert.Equal(150L, s1["completion_tokens"]);
        Assert.Equal(550L, s1["total_tokens"]);
        Assert.Equal(0.4, (double)s1["peak_budget_use"]!, 9);
        // gpt-4o: 400 prompt tokens at $2.50/M + 150 completion at $10/M.
        Assert.Equal((400 * 2.5 + 150 * 10.0) / 1_000_000, Convert.ToDouble(s1["estimated_cost_usd"]), 12);
        Assert.Equal(21L, s1["tool_calls"]);
        Assert.Equal(2L, s1["tool_errors"]);
        var s2 = sessions[1];
        Assert.Equal(1L, s2["assistant_messages"]);
        Assert.Equal(30L, s2["total_tokens"]);
        Assert.Null(s2["estimated_cost_usd"]);
        Assert.Equal(0L, s2["tool_calls"]);

        var usage = await Query($"SELECT * FROM `{_project}.{Dataset}.{ResourceNames.ToolUsageSummaryView}` ORDER BY tool_name");
        Assert.Equal(2, usage.Count);
        var calculator = usage[0];
        Assert.Equal("calculator", calculator["tool_name"]);
        Assert.Equal("2026-11-20", calculator["day"]);
        Assert.Equal(20L, calculator["calls"]);
        Assert.Equal(2L, calculator["errors"]);
        Assert.Equal(0.1, (double)calculator["error_rate"]!, 9);
        Assert.Equal(240L, calculator["tokens"]);
        // 20 durations 10..200 ms: the median is near 100 and the 95th percentile near 190.
        Assert.InRange((double)calculator["p50_duration_ms"]!, 100, 110);
        Assert.InRange((double)calculator["p95_duration_ms"]!, 190, 200);
    }

    private async Task<List<Dictionary<string, object?>>> Query(string sql)
    {
        var response = await BigQuery.QueryAsync(new QueryRequest { Query = sql });
        var rows = (response.Rows ?? []).Select(row => BigQueryRows.Decode(row, response.Schema!)).ToList();
        output.WriteLine(string.Join("\n", rows.Select(r => string.Join(", ", r.Select(kv => $"{kv.Key}={kv.Value}")))));
        return rows;
    }
}
