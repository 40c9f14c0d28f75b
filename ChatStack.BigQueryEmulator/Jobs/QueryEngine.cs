using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Sql;
using ChatStack.BigQueryEmulator.Storage;
using ChatStack.GoogleCloud.BigQuery;
using DuckDB.NET.Data;

namespace ChatStack.BigQueryEmulator.Jobs;

/// <summary>A finished query job: its resource and its materialised result, paged on request.</summary>
public sealed class QueryJob
{
    public required Job Resource { get; init; }
    public List<TableFieldSchema> Fields { get; init; } = [];
    public List<object?[]> Rows { get; init; } = [];
    public long? DmlAffectedRows { get; init; }
    public BigQueryError? Error { get; init; }
}

/// <summary>The parts of jobs.query and jobs.insert that describe a query.</summary>
public sealed record QuerySpec(
    string Query,
    bool? UseLegacySql,
    DatasetReference? DefaultDataset,
    List<QueryParameter>? Parameters,
    string? ParameterMode,
    bool DryRun,
    string? JobId,
    string? Location);

/// <summary>Runs GoogleSQL on DuckDB through the translator and keeps finished jobs for getQueryResults.</summary>
public sealed class QueryEngine(DuckDbDatabase database, Catalog catalog, TimeProvider time)
{
    private const int MaxJobsKept = 500;
    private readonly ConcurrentDictionary<(string, string), QueryJob> _jobs = new();
    private readonly ConcurrentQueue<(string, string)> _order = new();

    public QueryJob GetJob(string project, string jobId) =>
        _jobs.TryGetValue((project, jobId), out var job) ? job : throw BigQueryError.NotFound($"Not found: Job {project}:US.{jobId}");

    /// <summary>Runs a query; failures become a finished job with errorResult rather than an exception.</summary>
    public async Task<QueryJob> RunAsync(string project, QuerySpec spec, CancellationToken cancellationToken)
    {
        var jobId = string.IsNullOrEmpty(spec.JobId) ? "job_" + Guid.NewGuid().ToString("N") : spec.JobId;
        if (_jobs.ContainsKey((project, jobId)))
        {
            throw BigQueryError.Duplicate($"Already Exists: Job {project}:US.{jobId}");
        }
        var started = time.GetUtcNow();
        QueryJob job;
        try
        {
            job = await ExecuteAsync(project, jobId, spec, cancellationToken);
        }
        catch (BigQueryError error)
        {
            job = new QueryJob { Resource = Resource(project, jobId, spec, "SELECT", []), Error = error };
        }

        var statistics = job.Resource.Statistics!;
        statistics.CreationTime = Millis(started);
        statistics.StartTime = Millis(started);
        statistics.EndTime = Millis(time.GetUtcNow());
        if (job.Error is { } e)
        {
            var proto = new ErrorProto { Reason = e.Reason, Location = e.Location, Message = e.Message };
            job.Resource.Status = new JobStatus { State = "DONE", ErrorResult = proto, Errors = [proto] };
        }
        if (!spec.DryRun)
        {
            _jobs[(project, jobId)] = job;
            _order.Enqueue((project, jobId));
            while (_order.Count > MaxJobsKept && _order.TryDequeue(out var old))
            {
                _jobs.TryRemove(old, out _);
            }
        }
        return job;
    }

    private async Task<QueryJob> ExecuteAsync(string project, string jobId, QuerySpec spec, CancellationToken cancellationToken)
    {
        if (spec.UseLegacySql != false)
        {
            throw BigQueryError.InvalidQuery("The BigQuery emulator runs GoogleSQL only: set useLegacySql to false (BigQuery's default is legacy SQL).");
        }
        if (string.IsNullOrWhiteSpace(spec.Query))
        {
            throw BigQueryError.Invalid("Required parameter is missing: query", "query");
        }
        var defaultProject = spec.DefaultDataset?.ProjectId ?? project;
        var defaultDataset = spec.DefaultDataset?.DatasetId;

        if (Sql.SyntaxGuard.Run(() => DdlParser.TryParse(spec.Query, defaultProject, defaultDataset)) is { } ddl)
        {
            var type = ddl.Kind switch { DdlKind.CreateTable => "CREATE_TABLE", DdlKind.CreateView => "CREATE_VIEW", DdlKind.DropTable => "DROP_TABLE", _ => "DROP_VIEW" };
            if (!spec.DryRun)
            {
                await database.RunAsync(connection => RunDdl(connection, ddl), cancellationToken);
            }
            return new QueryJob { Resource = Resource(project, jobId, spec, type, []) };
        }

        var (named, positional) = QueryParameters.Literals(spec.Parameters, spec.ParameterMode);
        var context = new TranslationContext(defaultProject, defaultDataset, catalog.DatasetExists, named, positional);
        var sql = Sql.SyntaxGuard.Run(() => GoogleSqlTranslator.Translate(spec.Query, context));
        var statementType = StatementType(sql);

        return await database.RunAsync(connection =>
        {
            try
            {
                if (statementType != "SELECT")
                {
                    if (spec.DryRun)
                    {
                        Catalog.Execute(connection, "PREPARE __dry_run AS " + sql);
                        Catalog.Execute(connection, "DEALLOCATE __dry_run");
                        return new QueryJob { Resource = Resource(project, jobId, spec, statementType, []) };
                    }
                    using var dml = connection.CreateCommand();
                    dml.CommandText = sql;
                    var affected = dml.ExecuteNonQuery();
                    return new QueryJob { Resource = Resource(project, jobId, spec, statementType, [], affected), DmlAffectedRows = affected };
                }

                var fields = Describe(connection, sql);
                if (spec.DryRun)
                {
                    return new QueryJob { Resource = Resource(project, jobId, spec, statementType, fields), Fields = fields };
                }
                var rows = new List<object?[]>();
                using var command = connection.CreateCommand();
                command.CommandText = sql;
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    var values = new object?[reader.FieldCount];
                    for (var i = 0; i < values.Length; i++)
                    {
                        values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                        if (values[i] is Stream stream)
                        {
                            using var buffer = new MemoryStream();
                            stream.CopyTo(buffer);
                            values[i] = buffer.ToArray();
                        }
                    }
                    rows.Add(values);
                }
                return new QueryJob { Resource = Resource(project, jobId, spec, statementType, fields), Fields = fields, Rows = rows };
            }
            catch (DuckDBException e)
            {
                throw QueryErrors.ToError(e, sql);
            }
        }, cancellationToken);
    }

    private int RunDdl(DuckDBConnection connection, DdlStatement ddl)
    {
        var r = ddl.Table.TableReference!;
        var exists = catalog.DatasetExists(r.ProjectId!, r.DatasetId!) && catalog.ListTables(r.ProjectId!, r.DatasetId!).Any(t => t.TableReference!.TableId == r.TableId);
        switch (ddl.Kind)
        {
            case DdlKind.DropTable:
            case DdlKind.DropView:
                if (!exists)
                {
                    if (ddl.IfExists) return 0;
                    throw BigQueryError.TableNotFoundInQuery(r.ProjectId!, r.DatasetId!, r.TableId!);
                }
                catalog.DeleteTable(connection, r.ProjectId!, r.DatasetId!, r.TableId!);
                return 1;
            default:
                if (exists)
                {
                    if (ddl.IfNotExists) return 0;
                    if (ddl.OrReplace)
                    {
                        catalog.ReplaceTable(connection, r.ProjectId!, r.DatasetId!, ddl.Table);
                        return 1;
                    }
                }
                catalog.CreateTable(connection, r.ProjectId!, r.DatasetId!, ddl.Table);
                return 1;
        }
    }

    private static List<TableFieldSchema> Describe(DuckDBConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "DESCRIBE " + sql;
        using var reader = command.ExecuteReader();
        var fields = new List<TableFieldSchema>();
        while (reader.Read())
        {
            fields.Add(SchemaTypes.FromDuckType(reader.GetString(0), reader.GetString(1)));
        }
        return fields;
    }

    private static string StatementType(string sql)
    {
        var first = sql.TrimStart('(', ' ', '\n', '\r', '\t');
        var word = new string(first.TakeWhile(char.IsLetter).ToArray()).ToUpperInvariant();
        return word switch
        {
            "SELECT" or "WITH" or "VALUES" or "FROM" => "SELECT",
            "INSERT" or "UPDATE" or "DELETE" => word,
            "CREATE" or "DROP" or "ALTER" or "ATTACH" or "DETACH" or "COPY" or "EXPORT" or "IMPORT" or "INSTALL" or "LOAD" or "PRAGMA" or "SET" or "CALL" or "BEGIN" or "COMMIT" or "CHECKPOINT" or "VACUUM"
                => throw BigQueryError.InvalidQuery($"Unsupported in the BigQuery emulator: statement {word}."),
            // Anything else is left to DuckDB's parser, whose syntax error becomes invalidQuery.
            _ => "SELECT",
        };
    }

    private static Job Resource(string project, string jobId, QuerySpec spec, string statementType, List<TableFieldSchema> fields, long? affected = null) => new()
    {
        Kind = "bigquery#job",
        Id = $"{project}:US.{jobId}",
        Etag = jobId[^8..],
        JobReference = new JobReference { ProjectId = project, JobId = jobId, Location = spec.Location ?? "US" },
        Configuration = new JobConfiguration
        {
            JobType = "QUERY",
            DryRun = spec.DryRun ? true : null,
            Query = new JobConfigurationQuery
            {
                Query = spec.Query,
                UseLegacySql = spec.UseLegacySql,
                DefaultDataset = spec.DefaultDataset,
                QueryParameters = spec.Parameters,
                ParameterMode = spec.ParameterMode,
            },
        },
        Status = new JobStatus { State = "DONE" },
        Statistics = new JobStatistics
        {
            TotalBytesProcessed = "0",
            Query = new JobStatistics2
            {
                TotalBytesProcessed = "0",
                StatementType = statementType,
                CacheHit = false,
                Schema = fields.Count > 0 ? new TableSchema { Fields = fields } : null,
                NumDmlAffectedRows = affected?.ToString(CultureInfo.InvariantCulture),
            },
        },
    };

    private static string Millis(DateTimeOffset at) => at.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    /// <summary>One page of a finished job's rows.</summary>
    public static (List<JsonObject> Rows, string? PageToken) Page(QueryJob job, long? maxResults, string? pageToken, long? startIndex, bool int64Timestamp)
    {
        long offset = 0;
        if (!string.IsNullOrEmpty(pageToken))
        {
            if (!long.TryParse(pageToken, NumberStyles.None, CultureInfo.InvariantCulture, out offset))
            {
                throw BigQueryError.Invalid($"Invalid page token: {pageToken}", "pageToken");
            }
        }
        else if (startIndex is { } s)
        {
            offset = s;
        }
        var size = maxResults is > 0 ? maxResults.Value : 100_000;
        var end = Math.Min(job.Rows.Count, offset + size);
        var rows = new List<JsonObject>((int)Math.Max(0, end - offset));
        for (var i = offset; i < end; i++)
        {
            rows.Add(ResultEncoder.Row(job.Rows[(int)i], job.Fields, int64Timestamp));
        }
        return (rows, end < job.Rows.Count ? end.ToString(CultureInfo.InvariantCulture) : null);
    }
}
