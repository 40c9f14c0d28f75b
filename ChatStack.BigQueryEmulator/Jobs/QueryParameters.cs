using System.Globalization;
using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Sql;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Jobs;

/// <summary>Query parameters become typed SQL literals: exact, and independent of the DuckDB binding API.</summary>
public static class QueryParameters
{
    public static (Dictionary<string, string>? Named, List<string>? Positional) Literals(List<QueryParameter>? parameters, string? mode)
    {
        if (parameters is not { Count: > 0 })
        {
            return (null, null);
        }
        var positional = string.Equals(mode, "POSITIONAL", StringComparison.OrdinalIgnoreCase) || parameters.All(p => string.IsNullOrEmpty(p.Name));
        if (positional)
        {
            return (null, parameters.Select(p => Literal(p.ParameterType, p.ParameterValue)).ToList());
        }
        var named = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var parameter in parameters)
        {
            if (string.IsNullOrEmpty(parameter.Name))
            {
                throw BigQueryError.Invalid("Query parameters must all be named or all be positional.", "queryParameters");
            }
            named[parameter.Name] = Literal(parameter.ParameterType, parameter.ParameterValue);
        }
        return (named, null);
    }

    private static string Literal(QueryParameterType? type, QueryParameterValue? value)
    {
        var name = (type?.Type ?? throw BigQueryError.Invalid("Query parameter type is missing.", "queryParameters")).ToUpperInvariant();
        if (name == "ARRAY")
        {
            var element = GoogleSqlTranslator.ScalarTypeOrNested(type.ArrayType);
            var items = value?.ArrayValues?.Select(v => Literal(type.ArrayType, v)) ?? [];
            return $"CAST([{string.Join(", ", items)}] AS {element}[])";
        }
        if (name == "STRUCT")
        {
            var fields = type.StructTypes ?? [];
            var parts = fields.Select(f => $"{Storage.SchemaTypes.Quote(f.Name ?? "")} := {Literal(f.Type, value?.StructValues?.GetValueOrDefault(f.Name ?? ""))}");
            return $"struct_pack({string.Join(", ", parts)})";
        }
        var duckType = GoogleSqlTranslator.ScalarTypeOrNested(type);
        if (value?.Value is not { } text)
        {
            return $"CAST(NULL AS {duckType})";
        }
        if (name == "BYTES")
        {
            return $"from_base64({GoogleSqlTranslator.StringLiteral(text)})";
        }
        if (name == "TIMESTAMP" && Storage.BigQueryText.TryParseTimestamp(text, out var ts))
        {
            text = ts.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
        }
        return $"CAST({GoogleSqlTranslator.StringLiteral(text)} AS {duckType})";
    }
}
