using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Sql;
using ChatStack.BigQueryEmulator.Storage;

namespace ChatStack.Tests.BigQuery;

/// <summary>GoogleSQL in, DuckDB SQL out, for each construct the project's DDL and views use.</summary>
public sealed class TranslationGoldenTests
{
    private static readonly TranslationContext Context = new("p", null, (project, dataset) => project == "p" && dataset == "ds",
        new Dictionary<string, string> { ["id"] = "'x'" });

    [Theory]
    [InlineData("SELECT * FROM `p.ds.events`", "SELECT * FROM \"p.ds\".\"events\"")]
    [InlineData("SELECT * FROM `p`.`ds`.`events` AS e JOIN ds.sessions s ON e.id = s.id", "SELECT * FROM \"p.ds\".\"events\" AS e JOIN \"p.ds\".\"sessions\" s ON e.id = s.id")]
    [InlineData("SELECT * FROM ds.a, ds.b", "SELECT * FROM \"p.ds\".\"a\", \"p.ds\".\"b\"")]
    [InlineData("SELECT `select` FROM ds.t", "SELECT \"select\" FROM \"p.ds\".\"t\"")]
    [InlineData("SELECT COUNTIF(ok) AS n FROM ds.t", "SELECT count(*) FILTER (WHERE ok) AS n FROM \"p.ds\".\"t\"")]
    [InlineData("SELECT SAFE_DIVIDE(a, b)", "SELECT bq_safe_divide(a, b)")]
    [InlineData("SELECT JSON_VALUE(attrs, '$.model')", "SELECT bq_json_value(attrs, '$.model')")]
    [InlineData("SELECT TIMESTAMP_DIFF(end_ts, start_ts, SECOND)", "SELECT date_sub('second', start_ts, end_ts)")]
    [InlineData("SELECT APPROX_QUANTILES(latency, 100)[OFFSET(50)]", "SELECT quantile_disc(latency, 0.5)")]
    [InlineData("SELECT ARRAY_AGG(model IGNORE NULLS ORDER BY ts DESC LIMIT 1)", "SELECT list_slice(array_agg(model ORDER BY ts DESC) FILTER (WHERE (model) IS NOT NULL), 1, 1)")]
    [InlineData("SELECT ARRAY_AGG(x)[OFFSET(0)]", "SELECT array_agg(x)[(0) + 1]")]
    [InlineData("SELECT ARRAY_AGG(model IGNORE NULLS ORDER BY ts DESC LIMIT 1)[OFFSET(0)]", "SELECT arg_max(model, ts) FILTER (WHERE (model) IS NOT NULL)")]
    [InlineData("SELECT ARRAY_AGG(model ORDER BY ts LIMIT 1)[OFFSET(0)]", "SELECT arg_min(model, ts)")]
    [InlineData("SELECT tags[OFFSET(1)], tags[ORDINAL(1)], tags[SAFE_OFFSET(i)]", "SELECT tags[(1) + 1], tags[1], tags[(i) + 1]")]
    [InlineData("SELECT a / b", "SELECT bq_divide(a, b)")]
    [InlineData("SELECT x * y / z + 1", "SELECT bq_divide(x * y, z) + 1")]
    [InlineData("SELECT a / b / c", "SELECT bq_divide(bq_divide(a, b), c)")]
    [InlineData("SELECT SUM(a) / COUNT(*) AS mean", "SELECT bq_divide(SUM(a), COUNT(*)) AS mean")]
    [InlineData("SELECT CASE WHEN a THEN b ELSE c END / 2", "SELECT bq_divide(CASE WHEN a THEN b ELSE c END, 2)")]
    [InlineData("SELECT 2 / CASE k WHEN 1 THEN b END AS r", "SELECT bq_divide(2, CASE k WHEN 1 THEN b END) AS r")]
    [InlineData("SELECT n * CASE WHEN a THEN x / y ELSE CASE WHEN b THEN 1 END END / 2", "SELECT bq_divide(n * CASE WHEN a THEN bq_divide(x, y) ELSE CASE WHEN b THEN 1 END END, 2)")]
    [InlineData("SELECT STRUCT(a AS x, t.b)", "SELECT struct_pack(\"x\" := a, \"b\" := t.b)")]
    [InlineData("SELECT CAST(x AS NUMERIC), SAFE_CAST(y AS INT64)", "SELECT CAST(x AS DECIMAL(38,9)), TRY_CAST(y AS BIGINT)")]
    [InlineData("SELECT CAST(x AS ARRAY<STRUCT<a INT64, b STRING>>)", "SELECT CAST(x AS STRUCT(\"a\" BIGINT, \"b\" VARCHAR)[])")]
    [InlineData("SELECT TIMESTAMP '2024-01-01 00:00:00+00', NUMERIC '1.5'", "SELECT CAST('2024-01-01 00:00:00+00' AS TIMESTAMPTZ), CAST('1.5' AS DECIMAL(38,9))")]
    [InlineData("SELECT \"it's\", 'a\\'b', r'\\d+'", "SELECT 'it''s', 'a''b', '\\d+'")]
    [InlineData("SELECT DATE(ts), DATE(ts, 'America/New_York')", "SELECT CAST(ts AS DATE), CAST(timezone('America/New_York', ts) AS DATE)")]
    [InlineData("SELECT TIMESTAMP_TRUNC(ts, HOUR), DATE_TRUNC(d, WEEK)", "SELECT date_trunc('hour', ts), CAST((date_trunc('week', d + INTERVAL 1 DAY) - INTERVAL 1 DAY) AS DATE)")]
    [InlineData("SELECT * FROM ds.t WHERE id = @id", "SELECT * FROM \"p.ds\".\"t\" WHERE id = 'x'")]
    [InlineData("WITH s AS (SELECT 1 AS a) SELECT a FROM s", "WITH s AS (SELECT 1 AS a) SELECT a FROM \"s\"")]
    [InlineData("SELECT x FROM UNNEST([1, 2]) AS x", "SELECT x FROM unnest([1, 2]) AS \"x\"(\"x\")")]
    [InlineData("SELECT 1 -- comment\n;", "SELECT 1")]
    [InlineData("SELECT ARRAY_AGG(r.v IGNORE NULLS ORDER BY r.k DESC LIMIT 1)[OFFSET(0)] FROM UNNEST([1]) AS r", "SELECT arg_max(r.v, r.k) FILTER (WHERE (r.v) IS NOT NULL) FROM unnest([1]) AS \"r\"(\"r\")")]
    public void Translates(string googleSql, string duckDbSql)
    {
        Assert.Equal(duckDbSql, GoogleSqlTranslator.Translate(googleSql, Context));
    }

    [Fact]
    public void DefaultDataset_QualifiesBareTableNames()
    {
        var context = Context with { DefaultDataset = "ds" };
        Assert.Equal("SELECT * FROM \"p.ds\".\"events\"", GoogleSqlTranslator.Translate("SELECT * FROM events", context));
    }

    [Theory]
    [InlineData("SELECT * FROM ds.t FOR SYSTEM_TIME AS OF CURRENT_TIMESTAMP()", "FOR SYSTEM_TIME AS OF")]
    [InlineData("SELECT * FROM [p:ds.t]", "legacy SQL")]
    [InlineData("MERGE ds.t USING ds.s ON TRUE WHEN MATCHED THEN DELETE", "MERGE")]
    [InlineData("SELECT 1; SELECT 2", "multi-statement")]
    public void UnsupportedConstructs_AreRefusedByName(string googleSql, string construct)
    {
        var error = Assert.Throws<BigQueryError>(() => GoogleSqlTranslator.Translate(googleSql, Context));
        Assert.Equal("invalidQuery", error.Reason);
        Assert.Contains(construct, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateTableDdl_BecomesSchemaPartitioningClusteringAndDuckDbColumns()
    {
        var ddl = DdlParser.TryParse("""
            CREATE TABLE IF NOT EXISTS `p.ds.turns` (
              turn_id STRING NOT NULL OPTIONS(description = "id"),
              ts TIMESTAMP,
              usage STRUCT<prompt INT64, completion INT64>,
              tags ARRAY<STRING>,
              cost NUMERIC(10, 2),
              attrs JSON
            )
            PARTITION BY TIMESTAMP_TRUNC(ts, HOUR)
            CLUSTER BY turn_id, ts
            OPTIONS (description = "turns", require_partition_filter = true)
            """, "p", null)!;

        Assert.Equal((DdlKind.CreateTable, true), (ddl.Kind, ddl.IfNotExists));
        Assert.Equal(("p", "ds", "turns"), (ddl.Table.TableReference!.ProjectId, ddl.Table.TableReference.DatasetId, ddl.Table.TableReference.TableId));
        Assert.Equal(("HOUR", "ts"), (ddl.Table.TimePartitioning!.Type, ddl.Table.TimePartitioning.Field));
        Assert.Equal(["turn_id", "ts"], ddl.Table.Clustering!.Fields!);
        Assert.Equal(("turns", true), (ddl.Table.Description, ddl.Table.RequirePartitionFilter));
        Assert.Equal(("REQUIRED", "id"), (ddl.Table.Schema!.Fields![0].Mode, ddl.Table.Schema.Fields[0].Description));
        Assert.Equal(
            "CREATE TABLE \"p.ds\".\"turns\" (\"turn_id\" VARCHAR, \"ts\" TIMESTAMPTZ, \"usage\" STRUCT(\"prompt\" BIGINT, \"completion\" BIGINT), \"tags\" VARCHAR[], \"cost\" DECIMAL(38,9), \"attrs\" JSON)",
            SchemaTypes.CreateTableSql(SchemaTypes.TableName("p", "ds", "turns"), ddl.Table.Schema.Fields));
    }

    [Fact]
    public void CreateViewDdl_KeepsTheGoogleSqlQuery()
    {
        var ddl = DdlParser.TryParse("CREATE OR REPLACE VIEW ds.v OPTIONS(description='d') AS SELECT COUNTIF(ok) AS n FROM `p.ds.t`;", "p", null)!;
        Assert.Equal((DdlKind.CreateView, true), (ddl.Kind, ddl.OrReplace));
        Assert.Equal("SELECT COUNTIF(ok) AS n FROM `p.ds.t`", ddl.Table.View!.Query);
        Assert.Equal("d", ddl.Table.Description);
    }
}
