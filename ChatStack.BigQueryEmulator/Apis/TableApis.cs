using System.Globalization;
using System.Text.Json.Nodes;
using ChatStack.BigQueryEmulator.Storage;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Apis;

public static class TableApis
{
    public static IEndpointRouteBuilder MapTableApis(this IEndpointRouteBuilder routes)
    {
        var tables = routes.MapGroup("/bigquery/v2/projects/{projectId}/datasets/{datasetId}/tables");

        tables.MapPost("", async (string projectId, string datasetId, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            var request = await RequestBody.ReadAsync(context, Json.Context.Table);
            var created = await database.RunAsync(connection => WithRows(connection, catalog, catalog.CreateTable(connection, projectId, datasetId, request)), context.RequestAborted);
            return Json.Ok(created, Json.Context.Table);
        });

        tables.MapGet("", (string projectId, string datasetId, Catalog catalog) =>
        {
            catalog.GetDataset(projectId, datasetId);
            var list = new JsonArray();
            foreach (var table in catalog.ListTables(projectId, datasetId))
            {
                list.Add(new JsonObject
                {
                    ["kind"] = "bigquery#table",
                    ["id"] = table.Id,
                    ["tableReference"] = new JsonObject { ["projectId"] = projectId, ["datasetId"] = datasetId, ["tableId"] = table.TableReference!.TableId },
                    ["type"] = table.Type,
                });
            }
            var body = new JsonObject { ["kind"] = "bigquery#tableList", ["tables"] = list, ["totalItems"] = list.Count };
            return Json.Ok(body, Json.Context.JsonObject);
        });

        tables.MapGet("/{tableId}", async (string projectId, string datasetId, string tableId, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            var table = catalog.GetTable(projectId, datasetId, tableId);
            var result = await database.RunAsync(connection => WithRows(connection, catalog, table), context.RequestAborted);
            return Json.Ok(result, Json.Context.Table);
        });

        // tables.patch and tables.update share the rules: an update is a patch of every field it carries.
        async Task<IResult> Patch(string projectId, string datasetId, string tableId, HttpContext context, DuckDbDatabase database, Catalog catalog)
        {
            var request = await RequestBody.ReadAsync(context, Json.Context.Table);
            var updated = await database.RunAsync(connection => WithRows(connection, catalog, catalog.PatchTable(connection, projectId, datasetId, tableId, request)), context.RequestAborted);
            return Json.Ok(updated, Json.Context.Table);
        }
        tables.MapPatch("/{tableId}", Patch);
        tables.MapPut("/{tableId}", Patch);

        tables.MapDelete("/{tableId}", async (string projectId, string datasetId, string tableId, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            await database.RunAsync(connection => { catalog.DeleteTable(connection, projectId, datasetId, tableId); return 0; }, context.RequestAborted);
            return Results.NoContent();
        });

        tables.MapPost("/{tableId}/insertAll", async (string projectId, string datasetId, string tableId, HttpContext context, TableWriter writer) =>
        {
            using var request = await RequestBody.ReadDocumentAsync(context);
            var response = await writer.InsertAllAsync(projectId, datasetId, tableId, request.RootElement, context.RequestAborted);
            return Json.Ok(response, Json.Context.InsertAllResponse);
        });

        return routes;
    }

    private static Table WithRows(DuckDB.NET.Data.DuckDBConnection connection, Catalog catalog, Table table)
    {
        if (table.Type == "TABLE")
        {
            table.NumRows = catalog.CountRows(connection, table).ToString(CultureInfo.InvariantCulture);
            table.NumBytes ??= "0";
        }
        return table;
    }
}
