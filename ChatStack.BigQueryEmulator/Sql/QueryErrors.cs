using System.Text.RegularExpressions;
using ChatStack.BigQueryEmulator.Apis;
using DuckDB.NET.Data;

namespace ChatStack.BigQueryEmulator.Sql;

/// <summary>
/// DuckDB's errors in BigQuery's words where a client may depend on them: a missing table is a 404 notFound, and the
/// common mistakes read as BigQuery writes them (without its "at [line:column]", since DuckDB sees translated SQL).
/// Anything else keeps DuckDB's first line after "Query error: ", still a 400 invalidQuery.
/// </summary>
public static partial class QueryErrors
{
    public static BigQueryError ToError(DuckDBException exception, string translatedSql)
    {
        var lines = exception.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var message = lines.Length > 0 ? lines[0] : exception.Message;

        if (MissingTable().Match(message) is { Success: true } missing)
        {
            var table = missing.Groups["name"].Value;
            return Schema(table, translatedSql) is { } schema && schema.LastIndexOf('.') is var dot and > 0
                ? BigQueryError.TableNotFoundInQuery(schema[..dot], schema[(dot + 1)..], table)
                : BigQueryError.NotFound($"Not found: Table {table} was not found in location US");
        }
        return BigQueryError.InvalidQuery(Reword(message) ?? "Query error: " + message);
    }

    private static string? Reword(string message)
    {
        if (message.IndexOf("division by zero", StringComparison.Ordinal) is var division and >= 0)
        {
            return message[division..];
        }
        if (UnknownColumn().Match(message) is { Success: true } column)
        {
            return $"Unrecognized name: {column.Groups["name"].Value}";
        }
        if (UnknownFunction().Match(message) is { Success: true } function)
        {
            return $"Function not found: {function.Groups["name"].Value}";
        }
        if (NotGrouped().Match(message) is { Success: true } grouped)
        {
            return $"SELECT list expression references column {grouped.Groups["name"].Value} which is neither grouped nor aggregated";
        }
        if (SyntaxError().Match(message) is { Success: true } syntax)
        {
            return syntax.Groups["near"].Success ? $"Syntax error: Unexpected \"{syntax.Groups["near"].Value}\"" : "Syntax error: Unexpected end of script";
        }
        if (BadCast().Match(message) is { Success: true } cast)
        {
            var type = cast.Groups["type"].Value switch { "BIGINT" or "INT64" => "int64", "DOUBLE" or "FLOAT64" => "double", "BOOLEAN" or "BOOL" => "bool", _ => null };
            return type is null ? null : $"Bad {type} value: {cast.Groups["value"].Value}";
        }
        return null;
    }

    /// <summary>"project.dataset" of a table DuckDB names only by its table name, read from the translated SQL.</summary>
    private static string? Schema(string table, string translatedSql)
    {
        // Translated SQL names tables "project.dataset"."table" (SchemaTypes.TableName).
        var reference = Regex.Match(translatedSql, "\"(?<schema>[^\"]+)\"\\.\"" + Regex.Escape(table.Replace("\"", "\"\"", StringComparison.Ordinal)) + "\"");
        return reference.Success ? reference.Groups["schema"].Value : null;
    }

    [GeneratedRegex("^Catalog Error: Table with name (?<name>.+?) does not exist!")]
    private static partial Regex MissingTable();

    [GeneratedRegex("^Binder Error: Referenced column \"?(?<name>.+?)\"? not found in FROM clause!")]
    private static partial Regex UnknownColumn();

    [GeneratedRegex("^Catalog Error: Scalar Function with name (?<name>.+?) does not exist!")]
    private static partial Regex UnknownFunction();

    [GeneratedRegex("^Binder Error: column \"(?<name>.+?)\" must appear in the GROUP BY clause")]
    private static partial Regex NotGrouped();

    [GeneratedRegex("^Parser Error: syntax error at (?:or near \"(?<near>.*)\"|end of input)")]
    private static partial Regex SyntaxError();

    [GeneratedRegex("^Conversion Error: Could not convert string '(?<value>.*)' to (?<type>[A-Z0-9]+)")]
    private static partial Regex BadCast();
}
