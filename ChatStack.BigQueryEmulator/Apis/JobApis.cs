using System.Globalization;
using ChatStack.BigQueryEmulator.Jobs;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Apis;

/// <summary>jobs.query, jobs.insert (query jobs), jobs.get and jobs.getQueryResults; every job finishes before the reply.</summary>
public static class JobApis
{
    public static IEndpointRouteBuilder MapJobApis(this IEndpointRouteBuilder routes)
    {
        var project = routes.MapGroup("/bigquery/v2/projects/{projectId}");

        project.MapPost("/queries", async (string projectId, HttpContext context, QueryEngine engine) =>
        {
            var request = await RequestBody.ReadAsync(context, Json.Context.QueryRequest);
            var spec = new QuerySpec(request.Query ?? "", request.UseLegacySql, request.DefaultDataset, request.QueryParameters,
                request.ParameterMode, request.DryRun == true, null, request.Location);
            var job = await engine.RunAsync(projectId, spec, context.RequestAborted);
            if (job.Error is { } error)
            {
                throw error;
            }
            var (rows, pageToken) = spec.DryRun ? ([], null) : QueryEngine.Page(job, ParseLong(request.MaxResults), null, null, request.FormatOptions?.UseInt64Timestamp == true);
            var response = new QueryResponse
            {
                Kind = "bigquery#queryResponse",
                Schema = job.Fields.Count > 0 ? new TableSchema { Fields = job.Fields } : null,
                JobReference = spec.DryRun ? new JobReference { ProjectId = projectId, Location = job.Resource.JobReference!.Location } : job.Resource.JobReference,
                TotalRows = spec.DryRun ? null : job.Rows.Count.ToString(CultureInfo.InvariantCulture),
                Rows = spec.DryRun ? null : rows,
                PageToken = pageToken,
                JobComplete = true,
                TotalBytesProcessed = "0",
                CacheHit = false,
                NumDmlAffectedRows = job.DmlAffectedRows?.ToString(CultureInfo.InvariantCulture),
            };
            return Json.Ok(response, Json.Context.QueryResponse);
        });

        project.MapGet("/queries/{jobId}", (string projectId, string jobId, string? maxResults, string? pageToken, string? startIndex,
            bool? formatOptionsUseInt64Timestamp, HttpContext context, QueryEngine engine) =>
        {
            var job = engine.GetJob(projectId, jobId);
            if (job.Error is { } error)
            {
                throw error;
            }
            var int64 = formatOptionsUseInt64Timestamp == true || context.Request.Query["formatOptions.useInt64Timestamp"] == "true";
            var (rows, next) = QueryEngine.Page(job, ParseLong(maxResults), pageToken, ParseLong(startIndex), int64);
            var response = new GetQueryResultsResponse
            {
                Kind = "bigquery#getQueryResultsResponse",
                Etag = job.Resource.Etag,
                Schema = job.Fields.Count > 0 ? new TableSchema { Fields = job.Fields } : null,
                JobReference = job.Resource.JobReference,
                TotalRows = job.Rows.Count.ToString(CultureInfo.InvariantCulture),
                Rows = rows,
                PageToken = next,
                JobComplete = true,
                TotalBytesProcessed = "0",
                CacheHit = false,
                NumDmlAffectedRows = job.DmlAffectedRows?.ToString(CultureInfo.InvariantCulture),
            };
            return Json.Ok(response, Json.Context.GetQueryResultsResponse);
        });

        project.MapPost("/jobs", async (string projectId, HttpContext context, QueryEngine engine) =>
        {
            var request = await RequestBody.ReadAsync(context, Json.Context.Job);
            var query = request.Configuration?.Query
                ?? throw BigQueryError.Invalid("The BigQuery emulator runs query jobs only: configuration.query is required.", "configuration");
            var spec = new QuerySpec(query.Query ?? "", query.UseLegacySql, query.DefaultDataset, query.QueryParameters, query.ParameterMode,
                request.Configuration.DryRun == true, request.JobReference?.JobId, request.JobReference?.Location);
            var job = await engine.RunAsync(projectId, spec, context.RequestAborted);
            return Json.Ok(job.Resource, Json.Context.Job);
        });

        project.MapGet("/jobs/{jobId}", (string projectId, string jobId, QueryEngine engine) =>
            Json.Ok(engine.GetJob(projectId, jobId).Resource, Json.Context.Job));

        return routes;
    }

    private static long? ParseLong(string? value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : null;
}
