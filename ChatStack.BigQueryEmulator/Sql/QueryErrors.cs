using DuckDB.NET.Data;

namespace ChatStack.BigQueryEmulator.Sql;

public static class QueryErrors
{
    /// <summary>DuckDB's message without its caret diagram, as one line like BigQuery's "Query error: …".</summary>
    public static string Describe(DuckDBException exception)
    {
        var first = exception.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var message = first.Length > 0 ? first[0] : exception.Message;
        return message.Contains("division by zero", StringComparison.Ordinal)
            ? "Query error: " + message[message.IndexOf("division by zero", StringComparison.Ordinal)..]
            : "Query error: " + message;
    }
}
