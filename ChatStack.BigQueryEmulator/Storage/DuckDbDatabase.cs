using DuckDB.NET.Data;
using Microsoft.Extensions.Options;

namespace ChatStack.BigQueryEmulator.Storage;

/// <summary>
/// The one DuckDB connection. Work is serialised through a gate: DuckDB is fast enough single-threaded for an
/// emulator, and one connection keeps the session settings (UTC, macros) the translation relies on.
/// </summary>
public sealed class DuckDbDatabase : IDisposable
{
    private readonly DuckDBConnection _connection;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public DuckDbDatabase(IOptions<BigQueryEmulatorOptions> options, IHostEnvironment environment)
    {
        var settings = options.Value;
        string dataSource;
        if (settings.InMemory)
        {
            dataSource = ":memory:";
        }
        else
        {
            var folder = Path.GetFullPath(settings.DataPath, environment.ContentRootPath);
            Directory.CreateDirectory(folder);
            dataSource = Path.Combine(folder, "bigquery.duckdb");
        }

        Location = dataSource;
        _connection = new DuckDBConnection($"DataSource={dataSource}");
        try
        {
            _connection.Open();
        }
        catch (DuckDBException e) when (e.Message.Contains("Could not set lock", StringComparison.Ordinal))
        {
            _connection.Dispose();
            throw new DataFileInUseException(dataSource, e);
        }

        Execute(SessionSql);
    }

    public string Location { get; }

    public bool IsOpen => _connection.State == System.Data.ConnectionState.Open;

    public async Task<T> RunAsync<T>(Func<DuckDBConnection, T> work, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return work(_connection);
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        _connection.Dispose();
        _gate.Dispose();
    }

    // BigQuery evaluates DATE(ts) and friends in UTC; the macros give BigQuery's answers where DuckDB's differ:
    // "/" raises on zero, SAFE_DIVIDE is NULL there, JSON_VALUE unquotes scalars and is NULL for objects and arrays.
    private const string SessionSql = """
        SET TimeZone = 'UTC';
        CREATE SCHEMA IF NOT EXISTS __emulator;
        CREATE TABLE IF NOT EXISTS __emulator.datasets (project VARCHAR, dataset VARCHAR, resource VARCHAR, PRIMARY KEY (project, dataset));
        CREATE TABLE IF NOT EXISTS __emulator.tables (project VARCHAR, dataset VARCHAR, table_id VARCHAR, resource VARCHAR, PRIMARY KEY (project, dataset, table_id));
        CREATE OR REPLACE MACRO bq_divide(a, b) AS
            CASE WHEN b = 0 THEN error('division by zero: ' || CAST(a AS VARCHAR) || ' / ' || CAST(b AS VARCHAR)) ELSE a / b END;
        CREATE OR REPLACE MACRO bq_safe_divide(a, b) AS
            CASE WHEN b = 0 THEN NULL ELSE a / b END;
        CREATE OR REPLACE MACRO bq_json_value(j, p) AS (json_value(CAST(j AS JSON), p) ->> '$');
        """;
}

/// <summary>
/// Another process holds the DuckDB file: most often a second stack started from the same checkout (tests beside a
/// running `dotnet run`). Said in one line with the ways out, instead of a 500 on every request.
/// </summary>
public sealed class DataFileInUseException(string path, Exception inner) : Exception(
    $"The BigQuery emulator's data file {path} is in use by another process. Stop the other ChatStack stack, or give this one " +
    $"a folder of its own (GoogleCloud:Emulators:bigquery:DataPath in the AppHost) or no file at all (GoogleCloud:Emulators:bigquery:InMemory=true).",
    inner);
