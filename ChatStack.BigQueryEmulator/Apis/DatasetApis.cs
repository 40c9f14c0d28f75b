using ChatStack.BigQueryEmulator.Storage;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Apis;

public static class DatasetApis
{
    public static IEndpointRouteBuilder MapDatasetApis(this IEndpointRouteBuilder routes)
    {
        var datasets = routes.MapGroup("/bigquery/v2/projects/{projectId}/datasets");

        datasets.MapPost("", async (string projectId, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            var request = await RequestBody.ReadAsync(context, Json.Context.Dataset);
            var created = await database.RunAsync(connection => catalog.CreateDataset(connection, projectId, request), context.RequestAborted);
            return Json.Ok(created, Json.Context.Dataset);
        });

        datasets.MapGet("/{datasetId}", (string projectId, string datasetId, Catalog catalog) =>
            Json.Ok(catalog.GetDataset(projectId, datasetId), Json.Context.Dataset));

        datasets.MapDelete("/{datasetId}", async (string projectId, string datasetId, bool? deleteContents, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            await database.RunAsync(connection => { catalog.DeleteDataset(connection, projectId, datasetId, deleteContents == true); return 0; }, context.RequestAborted);
            return Results.NoContent();
        });

        return routes;
    }
}
