using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text.Json.Nodes;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Jobs;

/// <summary>
/// Rows in BigQuery's f/v encoding: every scalar a string, TIMESTAMP as float seconds (or integer microseconds
/// with useInt64Timestamp), RECORD as {"f":[…]}, REPEATED as [{"v":…}], NULL as null.
/// </summary>
public static class ResultEncoder
{
    public static JsonObject Row(object?[] values, IReadOnlyList<TableFieldSchema> fields, bool int64Timestamp)
    {
        var cells = new JsonArray();
        for (var i = 0; i < fields.Count; i++)
        {
            cells.Add(new JsonObject { ["v"] = Value(values[i], fields[i], int64Timestamp) });
        }
        return new JsonObject { ["f"] = cells };
    }

    private static JsonNode? Value(object? value, TableFieldSchema field, bool int64Timestamp)
    {
        if (value is null or DBNull)
        {
            return null;
        }
        if (field.Mode == "REPEATED")
        {
            var array = new JsonArray();
            if (value is IList list)
            {
                var element = new TableFieldSchema { Name = field.Name, Type = field.Type, Mode = "NULLABLE", Fields = field.Fields };
                foreach (var item in list)
                {
                    array.Add(new JsonObject { ["v"] = Value(item, element, int64Timestamp) });
                }
            }
            return array;
        }
        if (field.Type == "RECORD" && value is IDictionary<string, object?> record)
        {
            var cells = new JsonArray();
            foreach (var sub in field.Fields ?? [])
            {
                cells.Add(new JsonObject { ["v"] = Value(record.TryGetValue(sub.Name!, out var v) ? v : null, sub, int64Timestamp) });
            }
            return new JsonObject { ["f"] = cells };
        }
        return JsonValue.Create(Scalar(value, field.Type!, int64Timestamp));
    }

    public static string Scalar(object value, string type, bool int64Timestamp)
    {
        var invariant = CultureInfo.InvariantCulture;
        switch (value)
        {
            case bool b:
                return b ? "true" : "false";
            case double d:
                return FormatDouble(d);
            case float f:
                return FormatDouble(f);
            case decimal m:
                return m == 0 ? "0" : m.ToString("0.#############################", invariant);
            case BigInteger bi:
                return bi.ToString(invariant);
            case DateTime dt when type == "TIMESTAMP":
                var micros = (DateTime.SpecifyKind(dt, DateTimeKind.Utc) - DateTime.UnixEpoch).Ticks / 10;
                return int64Timestamp ? micros.ToString(invariant) : SecondsScientific(micros);
            case DateTimeOffset dto when type == "TIMESTAMP":
                var microsOffset = (dto.UtcDateTime - DateTime.UnixEpoch).Ticks / 10;
                return int64Timestamp ? microsOffset.ToString(invariant) : SecondsScientific(microsOffset);
            case DateTime dt:
                return dt.ToString(dt.Ticks % TimeSpan.TicksPerSecond == 0 ? "yyyy-MM-dd'T'HH:mm:ss" : "yyyy-MM-dd'T'HH:mm:ss.ffffff", invariant);
            case DateOnly date:
                return date.ToString("yyyy-MM-dd", invariant);
            case TimeOnly time:
                return time.ToString(time.Ticks % TimeSpan.TicksPerSecond == 0 ? "HH:mm:ss" : "HH:mm:ss.ffffff", invariant);
            case byte[] bytes:
                return Convert.ToBase64String(bytes);
            case Stream stream:
                using (var buffer = new MemoryStream())
                {
                    stream.CopyTo(buffer);
                    return Convert.ToBase64String(buffer.ToArray());
                }
            case IFormattable formattable:
                return formattable.ToString(null, invariant);
            default:
                return value.ToString() ?? "";
        }
    }

    private static string FormatDouble(double d) => double.IsNaN(d) ? "NaN"
        : double.IsPositiveInfinity(d) ? "Infinity"
        : double.IsNegativeInfinity(d) ? "-Infinity"
        : d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Seconds since the epoch the way BigQuery prints them, e.g. 1.7040672001234E9, computed exactly.</summary>
    public static string SecondsScientific(long micros)
    {
        if (micros == 0)
        {
            return "0.0";
        }
        var negative = micros < 0;
        var digits = BigInteger.Abs(micros).ToString(CultureInfo.InvariantCulture);
        // value = digits × 10^-6; scientific exponent is (number of digits − 1) − 6.
        var exponent = digits.Length - 1 - 6;
        var mantissa = digits.TrimEnd('0');
        var fraction = mantissa.Length > 1 ? mantissa[1..] : "0";
        return (negative ? "-" : "") + mantissa[0] + "." + fraction + "E" + exponent.ToString(CultureInfo.InvariantCulture);
    }
}
