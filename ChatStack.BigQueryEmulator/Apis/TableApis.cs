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

        // tabledata.list: rows in storage order, paged by offset, encoded with the table's own schema.
        tables.MapGet("/{tableId}/data", async (string projectId, string datasetId, string tableId, string? maxResults, string? pageToken, string? startIndex,
            bool? formatOptionsUseInt64Timestamp, HttpContext context, DuckDbDatabase database, Catalog catalog) =>
        {
            var table = catalog.GetTable(projectId, datasetId, tableId);
            var fields = table.Schema?.Fields ?? [];
            long offset = 0;
            if (!string.IsNullOrEmpty(pageToken) && !long.TryParse(pageToken, NumberStyles.None, CultureInfo.InvariantCulture, out offset))
            {
                throw BigQueryError.Invalid($"Invalid page token: {pageToken}", "pageToken");
            }
            if (string.IsNullOrEmpty(pageToken) && long.TryParse(startIndex, NumberStyles.None, CultureInfo.InvariantCulture, out var start)) offset = start;
            var limit = long.TryParse(maxResults, NumberStyles.None, CultureInfo.InvariantCulture, out var max) && max > 0 ? max : 100_000;
            var int64 = formatOptionsUseInt64Timestamp == true || context.Request.Query["formatOptions.useInt64Timestamp"] == "true";
            var (rows, total) = await database.RunAsync(connection =>
            {
                var total = catalog.CountRows(connection, table);
                var columns = string.Join(", ", fields.Select(f => SchemaTypes.Quote(f.Name!)));
                var result = new JsonArray();
                if (fields.Count > 0)
                {
                    using var command = connection.CreateCommand();
                    command.CommandText = $"SELECT {columns} FROM {SchemaTypes.TableName(projectId, datasetId, tableId)} LIMIT {limit} OFFSET {offset}";
                    using var reader = command.ExecuteReader();
                    while (reader.Read())
                    {
                        var values = new object?[fields.Count];
                        for (var i = 0; i < values.Length; i++) values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                        result.Add(Jobs.ResultEncoder.Row(values, fields, int64));
                    }
                }
                return (result, total);
            }, context.RequestAborted);
            var body = new JsonObject { ["kind"] = "bigquery#tableDataList", ["totalRows"] = total.ToString(CultureInfo.InvariantCulture), ["rows"] = rows };
            if (offset + rows.Count < total) body["pageToken"] = (offset + rows.Count).ToString(CultureInfo.InvariantCulture);
            return Json.Ok(body, Json.Context.JsonObject);
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
