using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ChatStack.GoogleCloud.BigQuery;

/// <summary>Decodes BigQuery's f/v rows into .NET values by schema: INTEGER→long, FLOAT→double, NUMERIC→decimal,
/// BOOLEAN→bool, TIMESTAMP→DateTimeOffset, RECORD→dictionary, REPEATED→list, everything else its string.</summary>
public static class BigQueryRows
{
    public static Dictionary<string, object?> Decode(JsonObject row, TableSchema schema)
    {
        var fields = schema.Fields ?? [];
        var cells = row["f"]!.AsArray();
        var result = new Dictionary<string, object?>(fields.Count, StringComparer.Ordinal);
        for (var i = 0; i < fields.Count; i++)
        {
            result[fields[i].Name!] = Value(cells[i]?["v"], fields[i]);
        }
        return result;
    }

    private static object? Value(JsonNode? node, TableFieldSchema field)
    {
        if (node is null)
        {
            return null;
        }
        if (string.Equals(field.Mode, "REPEATED", StringComparison.OrdinalIgnoreCase))
        {
            var element = new TableFieldSchema { Name = field.Name, Type = field.Type, Fields = field.Fields, Mode = "NULLABLE" };
            return node.AsArray().Select(item => Value(item?["v"], element)).ToList();
        }
        if (field.Type is "RECORD" or "STRUCT")
        {
            return Decode(node.AsObject(), new TableSchema { Fields = field.Fields });
        }
        var text = node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : node.ToJsonString();
        var invariant = CultureInfo.InvariantCulture;
        return field.Type switch
        {
            "INTEGER" or "INT64" => long.Parse(text, invariant),
            "FLOAT" or "FLOAT64" => double.Parse(text, invariant),
            "NUMERIC" or "BIGNUMERIC" => decimal.Parse(text, NumberStyles.Float, invariant),
            "BOOLEAN" or "BOOL" => text == "true",
            "TIMESTAMP" => text.Contains('E', StringComparison.Ordinal) || text.Contains('.', StringComparison.Ordinal)
                ? DateTimeOffset.UnixEpoch.AddTicks((long)Math.Round(decimal.Parse(text, NumberStyles.Float, invariant) * 10_000_000m))
                : DateTimeOffset.UnixEpoch.AddTicks(long.Parse(text, invariant) * 10),
            _ => text,
        };
    }
}
