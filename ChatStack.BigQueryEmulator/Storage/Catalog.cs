using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Sql;
using ChatStack.GoogleCloud.BigQuery;
using DuckDB.NET.Data;

namespace ChatStack.BigQueryEmulator.Storage;

/// <summary>
/// Datasets and tables as BigQuery describes them. The resources are kept as JSON beside the data so partitioning,
/// clustering and descriptions survive restarts; every mutation runs on the connection inside the gate.
/// </summary>
public sealed class Catalog
{
    private readonly ConcurrentDictionary<(string, string), Dataset> _datasets = new();
    private readonly ConcurrentDictionary<(string, string, string), Table> _tables = new();
    private readonly TimeProvider _time;

    public Catalog(DuckDbDatabase database, TimeProvider time)
    {
        _time = time;
        database.RunAsync(Load).GetAwaiter().GetResult();
    }

    private int Load(DuckDBConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT project, dataset, resource FROM __emulator.datasets";
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                _datasets[(reader.GetString(0), reader.GetString(1))] = JsonSerializer.Deserialize(reader.GetString(2), BigQueryJsonContext.Default.Dataset)!;
            }
        }
        command.CommandText = "SELECT project, dataset, table_id, resource FROM __emulator.tables";
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                _tables[(reader.GetString(0), reader.GetString(1), reader.GetString(2))] = JsonSerializer.Deserialize(reader.GetString(3), BigQueryJsonContext.Default.Table)!;
            }
        }
        return _datasets.Count;
    }

    public bool DatasetExists(string project, string dataset) => _datasets.ContainsKey((project, dataset));

    public Dataset GetDataset(string project, string dataset) =>
        _datasets.TryGetValue((project, dataset), out var found)
            ? found
            : throw BigQueryError.NotFound($"Not found: Dataset {project}:{dataset}");

    public Table GetTable(string project, string dataset, string table)
    {
        GetDataset(project, dataset);
        return _tables.TryGetValue((project, dataset, table), out var found)
            ? found
            : throw BigQueryError.NotFound($"Not found: Table {project}:{dataset}.{table}");
    }

    public IEnumerable<Table> ListTables(string project, string dataset) =>
        _tables.Where(t => t.Key.Item1 == project && t.Key.Item2 == dataset).OrderBy(t => t.Key.Item3, StringComparer.Ordinal).Select(t => t.Value);

    public Dataset CreateDataset(DuckDBConnection connection, string project, Dataset request)
    {
        var datasetId = request.DatasetReference?.DatasetId;
        if (string.IsNullOrEmpty(datasetId))
        {
            throw BigQueryError.Invalid("Required parameter is missing: datasetReference.datasetId");
        }
        if (!IsValidId(datasetId, allowDash: false))
        {
            throw BigQueryError.Invalid($"Invalid dataset ID \"{datasetId}\". Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.");
        }
        if (request.DatasetReference!.ProjectId is { } p && p != project)
        {
            throw BigQueryError.Invalid($"Invalid project ID '{p}' in datasetReference; the request is for project '{project}'.");
        }
        if (_datasets.ContainsKey((project, datasetId)))
        {
            throw BigQueryError.Duplicate($"Already Exists: Dataset {project}:{datasetId}");
        }

        var now = Now();
        request.Kind = "bigquery#dataset";
        request.Id = $"{project}:{datasetId}";
        request.DatasetReference = new DatasetReference { ProjectId = project, DatasetId = datasetId };
        request.Location ??= "US";
        request.CreationTime = now;
        request.LastModifiedTime = now;
        request.Etag = Etag();

        Execute(connection, $"CREATE SCHEMA IF NOT EXISTS {SchemaTypes.SchemaName(project, datasetId)}");
        SaveDataset(connection, project, datasetId, request);
        return request;
    }

    public void DeleteDataset(DuckDBConnection connection, string project, string dataset, bool deleteContents)
    {
        GetDataset(project, dataset);
        var tables = ListTables(project, dataset).ToList();
        if (tables.Count > 0 && !deleteContents)
        {
            throw new BigQueryError(400, "FAILED_PRECONDITION", "resourceInUse", $"Dataset {project}:{dataset} is still in use");
        }
        Execute(connection, $"DROP SCHEMA IF EXISTS {SchemaTypes.SchemaName(project, dataset)} CASCADE");
        Execute(connection, $"DELETE FROM __emulator.tables WHERE project = {Literal(project)} AND dataset = {Literal(dataset)}");
        Execute(connection, $"DELETE FROM __emulator.datasets WHERE project = {Literal(project)} AND dataset = {Literal(dataset)}");
        foreach (var table in tables)
        {
            _tables.TryRemove((project, dataset, table.TableReference!.TableId!), out _);
        }
        _datasets.TryRemove((project, dataset), out _);
    }

    public Table CreateTable(DuckDBConnection connection, string project, string dataset, Table request)
    {
        GetDataset(project, dataset);
        var tableId = request.TableReference?.TableId;
        if (string.IsNullOrEmpty(tableId))
        {
            throw BigQueryError.Invalid("Required parameter is missing: tableReference.tableId");
        }
        if (!IsValidId(tableId, allowDash: true))
        {
            throw BigQueryError.Invalid($"Invalid table ID \"{tableId}\".");
        }
        if (_tables.ContainsKey((project, dataset, tableId)))
        {
            throw BigQueryError.Duplicate($"Already Exists: Table {project}:{dataset}.{tableId}");
        }

        var now = Now();
        request.Kind = "bigquery#table";
        request.Id = $"{project}:{dataset}.{tableId}";
        request.TableReference = new TableReference { ProjectId = project, DatasetId = dataset, TableId = tableId };
        request.CreationTime = now;
        request.LastModifiedTime = now;
        request.Location = GetDataset(project, dataset).Location;
        request.Etag = Etag();
        var name = SchemaTypes.TableName(project, dataset, tableId);

        if (request.View is { } view)
        {
            if (view.UseLegacySql != false && view.UseLegacySql is not null)
            {
                throw BigQueryError.Invalid("Legacy SQL views are not supported by the emulator; set view.useLegacySql to false.");
            }
            view.UseLegacySql = false;
            request.Type = "VIEW";
            request.TimePartitioning = null;
            request.Clustering = null;
            request.Schema = CreateView(connection, project, dataset, name, view.Query, replace: false);
        }
        else
        {
            request.Type = "TABLE";
            SchemaTypes.Validate(request.Schema?.Fields);
            request.Schema ??= new TableSchema { Fields = [] };
            request.Schema.Fields ??= [];
            ValidateLayout(request);
            Execute(connection, SchemaTypes.CreateTableSql(name, request.Schema.Fields));
        }

        SaveTable(connection, request);
        return request;
    }

    public Table PatchTable(DuckDBConnection connection, string project, string dataset, string tableId, Table patch)
    {
        var current = GetTable(project, dataset, tableId);
        var updated = JsonSerializer.Deserialize(JsonSerializer.Serialize(current, BigQueryJsonContext.Default.Table), BigQueryJsonContext.Default.Table)!;
        var name = SchemaTypes.TableName(project, dataset, tableId);

        if (patch.TimePartitioning is not null && !SamePartitioning(current.TimePartitioning, patch.TimePartitioning))
        {
            throw BigQueryError.Invalid($"Cannot change partitioning spec of table {project}:{dataset}.{tableId}. Partitioning is fixed when the table is created.");
        }
        if (patch.Description is not null) updated.Description = patch.Description;
        if (patch.FriendlyName is not null) updated.FriendlyName = patch.FriendlyName;
        if (patch.Labels is not null) updated.Labels = patch.Labels;
        if (patch.ExpirationTime is not null) updated.ExpirationTime = patch.ExpirationTime;

        var statements = new List<string>();
        if (current.Type == "VIEW")
        {
            if (patch.View?.Query is { } query && query != current.View?.Query)
            {
                updated.Schema = CreateView(connection, project, dataset, name, query, replace: true);
                updated.View = new ViewDefinition { Query = query, UseLegacySql = false };
            }
        }
        else
        {
            if (patch.Clustering is not null)
            {
                updated.Clustering = patch.Clustering.Fields is { Count: > 0 } ? patch.Clustering : null;
            }
            if (patch.Schema?.Fields is { } fields)
            {
                SchemaTypes.Validate(fields);
                statements.AddRange(SchemaChanges(current, fields, name));
                // Keep the schema in DuckDB's column order (existing columns, then added ones): the appender relies on it.
                var existing = current.Schema?.Fields ?? [];
                var ordered = existing.Select(old => fields.First(f => string.Equals(f.Name, old.Name, StringComparison.OrdinalIgnoreCase)))
                    .Concat(fields.Where(f => !existing.Any(e => string.Equals(e.Name, f.Name, StringComparison.OrdinalIgnoreCase))))
                    .ToList();
                updated.Schema = new TableSchema { Fields = ordered };
            }
            ValidateLayout(updated);
        }

        foreach (var statement in statements)
        {
            Execute(connection, statement);
        }
        updated.LastModifiedTime = Now();
        updated.Etag = Etag();
        SaveTable(connection, updated);
        return updated;
    }

    public void DeleteTable(DuckDBConnection connection, string project, string dataset, string tableId)
    {
        var table = GetTable(project, dataset, tableId);
        var name = SchemaTypes.TableName(project, dataset, tableId);
        Execute(connection, table.Type == "VIEW" ? $"DROP VIEW IF EXISTS {name}" : $"DROP TABLE IF EXISTS {name}");
        Execute(connection, $"DELETE FROM __emulator.tables WHERE project = {Literal(project)} AND dataset = {Literal(dataset)} AND table_id = {Literal(tableId)}");
        _tables.TryRemove((project, dataset, tableId), out _);
    }

    /// <summary>
    /// CREATE OR REPLACE: drops and creates in one DuckDB transaction, so a replacement that fails (a view that does not
    /// compile, partitioning on a missing column) leaves the original and its rows, as BigQuery does.
    /// </summary>
    public Table ReplaceTable(DuckDBConnection connection, string project, string dataset, Table request)
    {
        var tableId = request.TableReference?.TableId ?? "";
        var original = GetTable(project, dataset, tableId);
        Execute(connection, "BEGIN TRANSACTION");
        try
        {
            DeleteTable(connection, project, dataset, tableId);
            var created = CreateTable(connection, project, dataset, request);
            Execute(connection, "COMMIT");
            return created;
        }
        catch
        {
            Execute(connection, "ROLLBACK");
            _tables[(project, dataset, tableId)] = original;
            throw;
        }
    }

    public long CountRows(DuckDBConnection connection, Table table)
    {
        var r = table.TableReference!;
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {SchemaTypes.TableName(r.ProjectId!, r.DatasetId!, r.TableId!)}";
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private TableSchema CreateView(DuckDBConnection connection, string project, string dataset, string name, string? query, bool replace)
    {
        if (string.IsNullOrWhiteSpace(query))
        {
            throw BigQueryError.Invalid("View query is empty.", "view.query");
        }
        // Unqualified names in a view resolve against the view's own project, as in BigQuery.
        var translated = SyntaxGuard.Run(() => GoogleSqlTranslator.Translate(query, new TranslationContext(project, null, DatasetExists)));
        try
        {
            Execute(connection, $"CREATE {(replace ? "OR REPLACE " : "")}VIEW {name} AS {translated}");
            using var command = connection.CreateCommand();
            command.CommandText = $"DESCRIBE SELECT * FROM {name}";
            using var reader = command.ExecuteReader();
            var fields = new List<TableFieldSchema>();
            while (reader.Read())
            {
                fields.Add(SchemaTypes.FromDuckType(reader.GetString(0), reader.GetString(1)));
            }
            return new TableSchema { Fields = fields };
        }
        catch (DuckDBException e)
        {
            throw QueryErrors.ToError(e, translated);
        }
    }

    private static IEnumerable<string> SchemaChanges(Table current, List<TableFieldSchema> fields, string name)
    {
        var id = current.Id!;
        var existing = current.Schema?.Fields ?? [];
        foreach (var old in existing)
        {
            var match = fields.FirstOrDefault(f => string.Equals(f.Name, old.Name, StringComparison.OrdinalIgnoreCase))
                ?? throw BigQueryError.Invalid($"Provided Schema does not match Table {id}. Field {old.Name} is missing in new schema");
            if (match.Type != old.Type)
            {
                throw BigQueryError.Invalid($"Provided Schema does not match Table {id}. Field {old.Name} has changed type from {old.Type} to {match.Type}");
            }
            if (match.Mode != old.Mode && !(old.Mode == "REQUIRED" && match.Mode == "NULLABLE"))
            {
                throw BigQueryError.Invalid($"Provided Schema does not match Table {id}. Field {old.Name} has changed mode from {old.Mode} to {match.Mode}");
            }
            if (old.Type == "RECORD" && SchemaTypes.ToDuckType(old) != SchemaTypes.ToDuckType(match))
            {
                throw BigQueryError.Invalid($"Provided Schema does not match Table {id}. Adding fields inside RECORD {old.Name} is not supported by the emulator.");
            }
        }
        foreach (var added in fields.Where(f => !existing.Any(e => string.Equals(e.Name, f.Name, StringComparison.OrdinalIgnoreCase))))
        {
            if (added.Mode == "REQUIRED")
            {
                throw BigQueryError.Invalid($"Provided Schema does not match Table {id}. Cannot add required fields to an existing schema. (field: {added.Name})");
            }
            yield return $"ALTER TABLE {name} ADD COLUMN {SchemaTypes.Quote(added.Name!)} {SchemaTypes.ToDuckType(added)}";
        }
    }

    private static void ValidateLayout(Table table)
    {
        var fields = table.Schema?.Fields ?? [];
        if (table.TimePartitioning is { } partitioning)
        {
            partitioning.Type = (partitioning.Type ?? "DAY").ToUpperInvariant();
            if (partitioning.Type is not ("DAY" or "HOUR" or "MONTH" or "YEAR"))
            {
                throw BigQueryError.Invalid($"Invalid value for timePartitioning.type: {partitioning.Type}");
            }
            if (partitioning.Field is { } fieldName)
            {
                var field = fields.FirstOrDefault(f => f.Name == fieldName)
                    ?? throw BigQueryError.Invalid($"The field specified for time partitioning can only be of type TIMESTAMP, DATE or DATETIME. The type found is: (field {fieldName} not found).");
                if (field.Type is not ("TIMESTAMP" or "DATE" or "DATETIME") || field.Mode == "REPEATED")
                {
                    throw BigQueryError.Invalid($"The field specified for time partitioning can only be of type TIMESTAMP, DATE or DATETIME. The type found is: {field.Type}.");
                }
            }
        }
        if (table.Clustering?.Fields is { } clustering)
        {
            if (clustering.Count > 4)
            {
                throw BigQueryError.Invalid("Too many clustering fields: at most 4 are allowed.");
            }
            foreach (var fieldName in clustering)
            {
                var field = fields.FirstOrDefault(f => f.Name == fieldName)
                    ?? throw BigQueryError.Invalid($"The field specified for clustering cannot be found in the schema. Invalid field: {fieldName}.");
                if (field.Type is "RECORD" or "JSON" or "FLOAT" || field.Mode == "REPEATED")
                {
                    throw BigQueryError.Invalid($"Field {fieldName} is of type {field.Type} which is not supported for clustering.");
                }
            }
        }
    }

    private static bool SamePartitioning(TimePartitioning? a, TimePartitioning b) =>
        a is not null
        && string.Equals(a.Type ?? "DAY", b.Type ?? "DAY", StringComparison.OrdinalIgnoreCase)
        && a.Field == b.Field;

    private void SaveDataset(DuckDBConnection connection, string project, string dataset, Dataset resource)
    {
        var json = JsonSerializer.Serialize(resource, BigQueryJsonContext.Default.Dataset);
        Execute(connection, $"INSERT OR REPLACE INTO __emulator.datasets VALUES ({Literal(project)}, {Literal(dataset)}, {Literal(json)})");
        _datasets[(project, dataset)] = resource;
    }

    private void SaveTable(DuckDBConnection connection, Table resource)
    {
        var r = resource.TableReference!;
        var json = JsonSerializer.Serialize(resource, BigQueryJsonContext.Default.Table);
        Execute(connection, $"INSERT OR REPLACE INTO __emulator.tables VALUES ({Literal(r.ProjectId!)}, {Literal(r.DatasetId!)}, {Literal(r.TableId!)}, {Literal(json)})");
        _tables[(r.ProjectId!, r.DatasetId!, r.TableId!)] = resource;
    }

    private static bool IsValidId(string id, bool allowDash) =>
        id.Length <= 1024 && id.All(c => char.IsAsciiLetterOrDigit(c) || c == '_' || (allowDash && c == '-'));

    private string Now() => _time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    private static string Etag() => Convert.ToBase64String(Guid.NewGuid().ToByteArray())[..22];

    internal static string Literal(string value) => "'" + value.Replace("'", "''") + "'";

    internal static void Execute(DuckDBConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
