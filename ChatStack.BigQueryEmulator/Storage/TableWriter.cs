using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ChatStack.BigQueryEmulator.Apis;
using ChatStack.GoogleCloud.BigQuery;
using DuckDB.NET.Data;
using Microsoft.Extensions.Options;

namespace ChatStack.BigQueryEmulator.Storage;

/// <summary>
/// tabledata.insertAll: rows are checked against the schema here, then appended as text into a staging table and
/// cast into the real one by one INSERT…SELECT (DuckDB's appender cannot write STRUCT columns, and one INSERT per
/// row is ~1k rows/s).
/// </summary>
public sealed class TableWriter(DuckDbDatabase database, Catalog catalog, TimeProvider time, IOptions<BigQueryEmulatorOptions> options)
{
    private readonly ConcurrentDictionary<(string, string, string), ConcurrentDictionary<string, DateTimeOffset>> _insertIds = new();

    public async Task<InsertAllResponse> InsertAllAsync(string project, string dataset, string tableId, InsertAllRequest request, CancellationToken cancellationToken)
    {
        var table = catalog.GetTable(project, dataset, tableId);
        if (table.Type == "VIEW")
        {
            throw BigQueryError.Invalid($"Cannot insert into view {project}:{dataset}.{tableId}.");
        }
        if (request.Rows is not { Count: > 0 })
        {
            throw BigQueryError.Invalid("No rows present in the request.", "rows");
        }

        var fields = table.Schema?.Fields ?? [];
        var ignoreUnknown = request.IgnoreUnknownValues == true;
        var converted = new string?[request.Rows.Count][];
        var errors = new List<ErrorProto>?[request.Rows.Count];
        for (var i = 0; i < request.Rows.Count; i++)
        {
            var rowErrors = new List<ErrorProto>();
            converted[i] = ConvertRow(request.Rows[i].Json, fields, ignoreUnknown, rowErrors);
            errors[i] = rowErrors.Count > 0 ? rowErrors : null;
        }

        var anyInvalid = errors.Any(e => e is not null);
        var response = new InsertAllResponse { Kind = "bigquery#tableDataInsertAllResponse" };
        if (anyInvalid)
        {
            response.InsertErrors = [];
            for (var i = 0; i < errors.Length; i++)
            {
                if (errors[i] is { } rowErrors)
                {
                    response.InsertErrors.Add(new InsertError { Index = i, Errors = rowErrors });
                }
                else if (request.SkipInvalidRows != true)
                {
                    // Without skipInvalidRows BigQuery writes nothing and marks every valid row "stopped".
                    response.InsertErrors.Add(new InsertError { Index = i, Errors = [new ErrorProto { Reason = "stopped", Location = "", DebugInfo = "", Message = "" }] });
                }
            }
            if (request.SkipInvalidRows != true)
            {
                return response;
            }
        }

        var now = time.GetUtcNow();
        var seen = _insertIds.GetOrAdd((project, dataset, tableId), _ => new());
        var window = options.Value.InsertIdWindow;
        var toWrite = new List<string?[]>(converted.Length);
        var newIds = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < converted.Length; i++)
        {
            if (errors[i] is not null)
            {
                continue;
            }
            if (request.Rows[i].InsertId is { Length: > 0 } insertId)
            {
                if ((seen.TryGetValue(insertId, out var at) && now - at < window) || !newIds.Add(insertId))
                {
                    continue;
                }
            }
            toWrite.Add(converted[i]);
        }

        if (toWrite.Count > 0)
        {
            await database.RunAsync(connection => Write(connection, project, dataset, tableId, fields, toWrite), cancellationToken);
        }

        foreach (var id in newIds)
        {
            seen[id] = now;
        }
        if (seen.Count > 100_000)
        {
            foreach (var stale in seen.Where(p => now - p.Value >= window).Select(p => p.Key).ToList())
            {
                seen.TryRemove(stale, out _);
            }
        }
        return response;
    }

    private static int Write(DuckDBConnection connection, string project, string dataset, string tableId, List<TableFieldSchema> fields, List<string?[]> rows)
    {
        var staging = "__stage_" + Convert.ToHexString(System.Security.Cryptography.SHA1.HashData(Encoding.UTF8.GetBytes(project + "\0" + dataset + "\0" + tableId)))[..16] + "_" + fields.Count;
        Catalog.Execute(connection, $"CREATE TEMP TABLE IF NOT EXISTS {staging} ({string.Join(", ", fields.Select((_, i) => $"c{i} VARCHAR"))})");
        Catalog.Execute(connection, "BEGIN TRANSACTION");
        try
        {
            using (var appender = connection.CreateAppender(staging))
            {
                foreach (var row in rows)
                {
                    var appended = appender.CreateRow();
                    foreach (var value in row)
                    {
                        if (value is null) appended.AppendNullValue(); else appended.AppendValue(value);
                    }
                    appended.EndRow();
                }
            }
            var target = SchemaTypes.TableName(project, dataset, tableId);
            var columns = string.Join(", ", fields.Select(f => SchemaTypes.Quote(f.Name!)));
            var casts = string.Join(", ", fields.Select((f, i) => CastFromText($"c{i}", f)));
            Catalog.Execute(connection, $"INSERT INTO {target} ({columns}) SELECT {casts} FROM {staging}");
            Catalog.Execute(connection, $"DELETE FROM {staging}");
            Catalog.Execute(connection, "COMMIT");
        }
        catch
        {
            Catalog.Execute(connection, "ROLLBACK");
            throw;
        }
        return rows.Count;
    }

    private static string CastFromText(string column, TableFieldSchema field)
    {
        var type = SchemaTypes.ToDuckType(field);
        if (field.Mode == "REPEATED" || field.Type == "RECORD")
        {
            return $"CAST(CAST({column} AS JSON) AS {type})";
        }
        return field.Type switch
        {
            "BYTES" => $"from_base64({column})",
            _ => $"CAST({column} AS {type})",
        };
    }

    /// <summary>One row as the text of each top-level column, or errors in BigQuery's words.</summary>
    private static string?[] ConvertRow(JsonObject? json, List<TableFieldSchema> fields, bool ignoreUnknown, List<ErrorProto> errors)
    {
        var result = new string?[fields.Count];
        json ??= [];
        CheckUnknown(json, fields, "", ignoreUnknown, errors);
        for (var i = 0; i < fields.Count; i++)
        {
            var field = fields[i];
            var node = Find(json, field.Name!);
            var value = ConvertField(node, field, field.Name!, ignoreUnknown, errors);
            result[i] = value switch
            {
                null => null,
                JsonNode n when field.Mode == "REPEATED" || field.Type == "RECORD" => n.ToJsonString(),
                JsonValue v => v.GetValue<string>(),
                _ => value.ToJsonString(),
            };
        }
        return result;
    }

    private static JsonNode? Find(JsonObject json, string name)
    {
        if (json.TryGetPropertyValue(name, out var exact))
        {
            return exact;
        }
        // Field names are case-insensitive in BigQuery.
        foreach (var (key, value) in json)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase)) return value;
        }
        return null;
    }

    private static void CheckUnknown(JsonObject json, List<TableFieldSchema> fields, string prefix, bool ignoreUnknown, List<ErrorProto> errors)
    {
        if (ignoreUnknown) return;
        foreach (var (key, _) in json)
        {
            if (!fields.Any(f => string.Equals(f.Name, key, StringComparison.OrdinalIgnoreCase)))
            {
                errors.Add(Error(prefix + key, $"no such field: {prefix + key}."));
            }
        }
    }

    /// <summary>The value normalised to text DuckDB casts exactly (inside JSON for RECORD/REPEATED), or null.</summary>
    private static JsonNode? ConvertField(JsonNode? node, TableFieldSchema field, string path, bool ignoreUnknown, List<ErrorProto> errors)
    {
        if (field.Mode == "REPEATED")
        {
            if (node is null) return new JsonArray();
            if (node is not JsonArray array)
            {
                errors.Add(Error(path, $"Array specified for non-repeated field: {path}."));
                return null;
            }
            var items = new JsonArray();
            foreach (var item in array)
            {
                if (item is null)
                {
                    errors.Add(Error(path, $"Array specified for field {path} contains a null element."));
                    return null;
                }
                items.Add(ConvertScalarOrRecord(item, field, path, ignoreUnknown, errors));
            }
            return items;
        }
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
        {
            if (field.Mode == "REQUIRED")
            {
                errors.Add(Error(path, $"Missing required field: {path}."));
            }
            return null;
        }
        return ConvertScalarOrRecord(node, field, path, ignoreUnknown, errors);
    }

    private static JsonNode? ConvertScalarOrRecord(JsonNode node, TableFieldSchema field, string path, bool ignoreUnknown, List<ErrorProto> errors)
    {
        if (field.Type == "RECORD")
        {
            if (node is not JsonObject obj)
            {
                errors.Add(Error(path, $"This field: {path} is not a record."));
                return null;
            }
            CheckUnknown(obj, field.Fields!, path + ".", ignoreUnknown, errors);
            var result = new JsonObject();
            foreach (var sub in field.Fields!)
            {
                result[sub.Name!] = ConvertField(Find(obj, sub.Name!), sub, path + "." + sub.Name, ignoreUnknown, errors);
            }
            return result;
        }
        if (field.Type == "JSON")
        {
            if (node is JsonValue text && text.GetValueKind() == JsonValueKind.String)
            {
                try
                {
                    return JsonValue.Create(JsonNode.Parse(text.GetValue<string>())?.ToJsonString() ?? "null");
                }
                catch (JsonException)
                {
                    errors.Add(Error(path, $"Cannot convert value to JSON (bad value): {text.GetValue<string>()}"));
                    return null;
                }
            }
            return JsonValue.Create(node.ToJsonString());
        }
        if (node is not JsonValue value)
        {
            errors.Add(Error(path, $"This field: {path} is not a record."));
            return null;
        }
        var normalised = Scalar(value, field.Type!);
        if (normalised is null)
        {
            errors.Add(Error(path, $"Cannot convert value to {TypeWord(field.Type!)} (bad value): {Raw(value)}"));
            return null;
        }
        return JsonValue.Create(normalised);
    }

    private static string TypeWord(string type) => type switch
    {
        "INTEGER" => "integer",
        "FLOAT" => "floating point",
        "BOOLEAN" => "boolean",
        "TIMESTAMP" => "timestamp",
        _ => type.ToLowerInvariant(),
    };

    private static string Raw(JsonValue value) =>
        value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();

    private static string? Scalar(JsonValue value, string type)
    {
        var kind = value.GetValueKind();
        var text = kind == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();
        var invariant = CultureInfo.InvariantCulture;
        switch (type)
        {
            case "STRING":
            case "GEOGRAPHY":
                return kind is JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False ? text : null;
            case "INTEGER":
                if (kind is not (JsonValueKind.String or JsonValueKind.Number)) return null;
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, invariant, out var l)) return l.ToString(invariant);
                return decimal.TryParse(text, NumberStyles.Float, invariant, out var d) && d == decimal.Truncate(d) && d is >= long.MinValue and <= long.MaxValue
                    ? ((long)d).ToString(invariant) : null;
            case "FLOAT":
                if (kind is not (JsonValueKind.String or JsonValueKind.Number)) return null;
                return double.TryParse(text, NumberStyles.Float, invariant, out var f) || (text is "NaN" or "Infinity" or "-Infinity")
                    ? text : null;
            case "NUMERIC":
            case "BIGNUMERIC":
                if (kind is not (JsonValueKind.String or JsonValueKind.Number)) return null;
                if (!decimal.TryParse(text, NumberStyles.Float, invariant, out var n)) return null;
                var scale = type == "NUMERIC" ? 9 : 18;
                n = Math.Round(n, Math.Min(scale, 28), MidpointRounding.AwayFromZero);
                return Math.Abs(decimal.Truncate(n)) >= (type == "NUMERIC" ? decimal.MaxValue : 1e20m) ? null : n.ToString(invariant);
            case "BOOLEAN":
                if (kind is JsonValueKind.True or JsonValueKind.False) return text;
                return text.ToLowerInvariant() switch { "true" or "1" => "true", "false" or "0" => "false", _ => null };
            case "TIMESTAMP":
                if (kind == JsonValueKind.Number && double.TryParse(text, NumberStyles.Float, invariant, out var seconds))
                {
                    return FormatTimestamp(DateTimeOffset.UnixEpoch.AddTicks((long)Math.Round(seconds * 1e6) * 10));
                }
                return kind == JsonValueKind.String && BigQueryText.TryParseTimestamp(text, out var ts) ? FormatTimestamp(ts) : null;
            case "DATE":
                return kind == JsonValueKind.String && DateOnly.TryParseExact(text, "yyyy-MM-dd", invariant, DateTimeStyles.None, out var date)
                    ? date.ToString("yyyy-MM-dd", invariant) : null;
            case "DATETIME":
                return kind == JsonValueKind.String && DateTime.TryParse(text.Replace(' ', 'T'), invariant, DateTimeStyles.None, out var dt) && !text.EndsWith('Z')
                    ? dt.ToString("yyyy-MM-dd HH:mm:ss.ffffff", invariant) : null;
            case "TIME":
                return kind == JsonValueKind.String && TimeOnly.TryParse(text, invariant, out var time)
                    ? time.ToString("HH:mm:ss.ffffff", invariant) : null;
            case "BYTES":
                if (kind != JsonValueKind.String) return null;
                Span<byte> buffer = new byte[text.Length];
                return Convert.TryFromBase64String(text, buffer, out _) ? text : null;
            default:
                return null;
        }
    }

    private static string FormatTimestamp(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";

    private static ErrorProto Error(string location, string message) =>
        new() { Reason = "invalid", Location = location, DebugInfo = "", Message = message };
}
