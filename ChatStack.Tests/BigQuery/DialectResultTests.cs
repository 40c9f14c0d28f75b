using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Sql;
using ChatStack.BigQueryEmulator.Storage;
using DuckDB.NET.Data;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.BigQuery;

/// <summary>
/// Where DuckDB runs a GoogleSQL construct but answers differently, the translated SQL must give BigQuery's answer.
/// Each test states BigQuery's documented answer, and where it makes the point, the different raw DuckDB answer.
/// </summary>
public sealed class DialectResultTests : IDisposable
{
    private readonly DuckDbDatabase _database = new(
        Options.Create(new BigQueryEmulatorOptions { InMemory = true }),
        new HostingEnvironment { ContentRootPath = Path.GetTempPath() });

    private static readonly TranslationContext Context = new("p", null, (_, _) => false);

    public void Dispose() => _database.Dispose();

    private object? BigQuery(string googleSql) => Raw(GoogleSqlTranslator.Translate(googleSql, Context));

    private object? Raw(string duckSql) => _database.RunAsync(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = duckSql;
        var value = command.ExecuteScalar();
        return value is DBNull ? null : value;
    }).GetAwaiter().GetResult();

    [Fact]
    public void CountIf_OverNoRows_IsZero()
    {
        Assert.Equal(0L, Convert.ToInt64(BigQuery("SELECT COUNTIF(x > 0) FROM UNNEST(GENERATE_ARRAY(1, 0)) AS x")));
        Assert.Null(Raw("SELECT countif(x > 0) FROM range(0) t(x)"));
        Assert.Equal(2L, Convert.ToInt64(BigQuery("SELECT COUNTIF(x > 1) FROM UNNEST([1, 2, 3]) AS x")));
    }

    [Fact]
    public void JsonValue_UnquotesStringsAndIsNullForObjects()
    {
        Assert.Equal("m1", BigQuery("""SELECT JSON_VALUE('{"model":"m1"}', '$.model')"""));
        Assert.Equal("\"m1\"", Raw("""SELECT json_value('{"model":"m1"}', '$.model')::VARCHAR"""));
        Assert.Null(BigQuery("""SELECT JSON_VALUE('{"a":{"b":1}}', '$.a')"""));
        Assert.Equal("1", BigQuery("""SELECT JSON_VALUE('{"a":{"b":1}}', '$.a.b')"""));
        Assert.Null(BigQuery("""SELECT JSON_VALUE('{"a":[1]}', '$.a')"""));
        Assert.Null(BigQuery("""SELECT JSON_VALUE('{"a":null}', '$.a')"""));
    }

    [Fact]
    public void DivisionByZero_IsAnErrorAndSafeDivideIsNull()
    {
        var error = Assert.Throws<DuckDBException>(() => BigQuery("SELECT 1 / 0"));
        Assert.Contains("division by zero", error.Message, StringComparison.Ordinal);
        Assert.NotNull(Raw("SELECT 1 / 0"));
        Assert.Null(BigQuery("SELECT SAFE_DIVIDE(1, 0)"));
        Assert.Equal(2.5, BigQuery("SELECT SAFE_DIVIDE(5, 2)"));
        Assert.Equal(0.5, BigQuery("SELECT 1 / 2"));
    }

    [Fact]
    public void Numeric_KeepsNineDecimalDigits()
    {
        Assert.Equal(1.123456789m, BigQuery("SELECT CAST('1.123456789' AS NUMERIC)"));
        Assert.Equal(1.123m, Raw("SELECT CAST('1.123456789' AS NUMERIC)"));
        Assert.Equal(12345678901234567890.5m, BigQuery("SELECT NUMERIC '12345678901234567890.5'"));
    }

    [Fact]
    public void TimestampDiff_CountsWholeUnitsNotBoundaries()
    {
        const string sql = "SELECT TIMESTAMP_DIFF(TIMESTAMP '2024-01-01 00:00:01.1+00', TIMESTAMP '2024-01-01 00:00:00.9+00', SECOND)";
        Assert.Equal(0L, BigQuery(sql));
        Assert.Equal(1L, Raw("SELECT date_diff('second', TIMESTAMPTZ '2024-01-01 00:00:00.9+00', TIMESTAMPTZ '2024-01-01 00:00:01.1+00')"));
        Assert.Equal(-2L, BigQuery("SELECT TIMESTAMP_DIFF(TIMESTAMP '2024-01-01 00:00:00+00', TIMESTAMP '2024-01-01 02:30:00+00', HOUR)"));
    }

    [Fact]
    public void DateDiff_CountsBoundariesLikeBigQuery()
    {
        Assert.Equal(1L, BigQuery("SELECT DATE_DIFF(DATE '2024-02-01', DATE '2024-01-31', MONTH)"));
        Assert.Equal(1L, BigQuery("SELECT DATE_DIFF(DATE '2024-02-01', DATE '2024-01-31', DAY)"));
    }

    [Fact]
    public void DateOfTimestamp_IsTakenInUtc()
    {
        Assert.Equal(new DateOnly(2024, 1, 2), BigQuery("SELECT DATE(TIMESTAMP '2024-01-01 23:30:00-05:00')"));
        Assert.Equal(new DateOnly(2024, 1, 1), BigQuery("SELECT DATE(TIMESTAMP '2024-01-01 23:30:00-05:00', 'America/New_York')"));
    }

    [Fact]
    public void TimestampTruncWeek_StartsOnSunday()
    {
        Assert.Equal(new DateOnly(2024, 1, 7), BigQuery("SELECT DATE_TRUNC(DATE '2024-01-10', WEEK)"));
    }

    [Fact]
    public void ApproxQuantilesOffset_PicksTheQuantile()
    {
        Assert.Equal(1L, BigQuery("SELECT APPROX_QUANTILES(x, 4)[OFFSET(0)] FROM UNNEST(GENERATE_ARRAY(1, 9)) AS x"));
        Assert.Equal(5L, BigQuery("SELECT APPROX_QUANTILES(x, 4)[OFFSET(2)] FROM UNNEST(GENERATE_ARRAY(1, 9)) AS x"));
        Assert.Equal(9L, BigQuery("SELECT APPROX_QUANTILES(x, 4)[OFFSET(4)] FROM UNNEST(GENERATE_ARRAY(1, 9)) AS x"));
    }

    [Fact]
    public void ArrayAggIgnoreNullsOrderByLimit_KeepsTheFirstNonNulls()
    {
        var value = BigQuery("SELECT ARRAY_AGG(x IGNORE NULLS ORDER BY x DESC LIMIT 2) FROM UNNEST([1, NULL, 3, 2]) AS x");
        Assert.Equal([3, 2], ((System.Collections.IEnumerable)value!).Cast<object>().Select(Convert.ToInt64));
    }

    [Fact]
    public void LatestNonNull_ViaArrayAggOffset_MatchesTheSortedArray()
    {
        const string rows = "FROM UNNEST([STRUCT(1 AS k, 'a' AS v), STRUCT(3 AS k, NULL AS v), STRUCT(2 AS k, 'b' AS v)]) AS r";
        Assert.Equal("b", BigQuery($"SELECT ARRAY_AGG(r.v IGNORE NULLS ORDER BY r.k DESC LIMIT 1)[OFFSET(0)] {rows}"));
        Assert.Equal("a", BigQuery($"SELECT ARRAY_AGG(r.v IGNORE NULLS ORDER BY r.k LIMIT 1)[OFFSET(0)] {rows}"));
    }

    [Fact]
    public void CountIfInAView_OverAnEmptyTable_IsZero()
    {
        Raw("CREATE SCHEMA \"p.ds\"; CREATE TABLE \"p.ds\".\"t\" (ok BOOLEAN)");
        var context = Context with { DatasetExists = (p, d) => p == "p" && d == "ds" };
        Raw("CREATE VIEW \"p.ds\".\"v\" AS " + GoogleSqlTranslator.Translate("SELECT COUNTIF(ok) AS n FROM ds.t", context));
        Assert.Equal(0L, Convert.ToInt64(Raw("SELECT n FROM \"p.ds\".\"v\"")));
    }

    [Fact]
    public void InvalidTranslation_ThrowsBigQueryError()
    {
        Assert.Throws<BigQueryError>(() => BigQuery("SELECT * FROM nowhere.t"));
    }
}
