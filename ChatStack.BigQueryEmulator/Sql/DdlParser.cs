using ChatStack.BigQueryEmulator.Apis;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Sql;

public enum DdlKind { CreateTable, CreateView, DropTable, DropView }

/// <summary>A DDL statement as BigQuery resources, so DDL and the REST API share one path through the catalog.</summary>
public sealed record DdlStatement(DdlKind Kind, bool OrReplace, bool IfNotExists, bool IfExists, Table Table, string? AsQuery);

/// <summary>
/// Parses CREATE [OR REPLACE] TABLE|VIEW [IF NOT EXISTS] and DROP TABLE|VIEW [IF EXISTS]: column types
/// (STRUCT&lt;…&gt;, ARRAY&lt;…&gt;, NOT NULL), PARTITION BY, CLUSTER BY and OPTIONS become table metadata.
/// </summary>
public static class DdlParser
{
    public static DdlStatement? TryParse(string sql, string defaultProject, string? defaultDataset)
    {
        var all = SqlLexer.Tokenize(sql);
        var t = all.Where(x => x.Kind != TokenKind.Space).ToList();
        while (t.Count > 0 && t[^1].IsSymbol(';')) t.RemoveAt(t.Count - 1);
        if (t.Count < 3 || !(t[0].IsWord("CREATE") || t[0].IsWord("DROP")))
        {
            return null;
        }

        var k = 1;
        var orReplace = false;
        if (t[0].IsWord("CREATE") && t[k].IsWord("OR") && t[k + 1].IsWord("REPLACE"))
        {
            orReplace = true;
            k += 2;
        }
        if (t[k].IsWord("TEMP") || t[k].IsWord("TEMPORARY")) k++;
        DdlKind kind;
        if (t[k].IsWord("TABLE")) kind = t[0].IsWord("CREATE") ? DdlKind.CreateTable : DdlKind.DropTable;
        else if (t[k].IsWord("VIEW")) kind = t[0].IsWord("CREATE") ? DdlKind.CreateView : DdlKind.DropView;
        else return null;
        k++;

        var ifNotExists = false;
        var ifExists = false;
        if (k + 2 < t.Count && t[k].IsWord("IF") && t[k + 1].IsWord("NOT") && t[k + 2].IsWord("EXISTS")) { ifNotExists = true; k += 3; }
        else if (k + 1 < t.Count && t[k].IsWord("IF") && t[k + 1].IsWord("EXISTS")) { ifExists = true; k += 2; }

        var reference = ReadName(t, ref k, defaultProject, defaultDataset);
        var table = new Table { TableReference = reference };
        if (kind is DdlKind.DropTable or DdlKind.DropView)
        {
            return new DdlStatement(kind, false, false, ifExists, table, null);
        }

        string? asQuery = null;
        if (kind == DdlKind.CreateTable && k < t.Count && t[k].IsSymbol('('))
        {
            var close = Close(t, k);
            table.Schema = new TableSchema { Fields = Columns(t, k + 1, close) };
            k = close + 1;
        }
        while (k < t.Count)
        {
            if (t[k].IsWord("PARTITION") && t[k + 1].IsWord("BY"))
            {
                k += 2;
                table.TimePartitioning = Partitioning(t, ref k);
            }
            else if (t[k].IsWord("CLUSTER") && t[k + 1].IsWord("BY"))
            {
                k += 2;
                var fields = new List<string>();
                while (k < t.Count && t[k].Kind is TokenKind.Ident or TokenKind.Quoted && !t[k].IsWord("OPTIONS") && !t[k].IsWord("AS"))
                {
                    fields.Add(t[k].Value);
                    k++;
                    if (k < t.Count && t[k].IsSymbol(',')) k++;
                }
                table.Clustering = new Clustering { Fields = fields };
            }
            else if (t[k].IsWord("OPTIONS") && k + 1 < t.Count && t[k + 1].IsSymbol('('))
            {
                var close = Close(t, k + 1);
                Options(t, k + 2, close, table);
                k = close + 1;
            }
            else if (t[k].IsWord("AS"))
            {
                // Keep the GoogleSQL text of the query from the original string: views store it as written.
                var asToken = t[k];
                var index = IndexOfToken(all, asToken, k, t);
                asQuery = string.Concat(all.Skip(index + 1).Select(x => x.Text)).Trim().TrimEnd(';').Trim();
                break;
            }
            else
            {
                throw BigQueryError.InvalidQuery($"Syntax error: Unexpected \"{t[k].Text}\" in {(kind == DdlKind.CreateView ? "CREATE VIEW" : "CREATE TABLE")}.");
            }
        }

        if (kind == DdlKind.CreateView)
        {
            if (asQuery is null) throw BigQueryError.InvalidQuery("Syntax error: Expected keyword AS in CREATE VIEW.");
            table.View = new ViewDefinition { Query = asQuery, UseLegacySql = false };
        }
        else if (asQuery is not null)
        {
            throw BigQueryError.InvalidQuery("Unsupported in the BigQuery emulator: CREATE TABLE … AS SELECT.");
        }
        return new DdlStatement(kind, orReplace, ifNotExists, false, table, asQuery);
    }

    private static int IndexOfToken(List<Token> all, Token target, int significantIndex, List<Token> significant)
    {
        var seen = -1;
        for (var i = 0; i < all.Count; i++)
        {
            if (all[i].Kind == TokenKind.Space) continue;
            seen++;
            if (seen == significantIndex) return i;
        }
        throw new InvalidOperationException("token not found");
    }

    private static TableReference ReadName(List<Token> t, ref int k, string project, string? dataset)
    {
        var parts = new List<string>();
        while (k < t.Count)
        {
            if (t[k].Kind == TokenKind.Quoted) parts.AddRange(t[k].Value.Split('.'));
            else if (t[k].Kind is TokenKind.Ident) parts.Add(t[k].Value);
            else break;
            k++;
            if (k < t.Count && t[k].IsSymbol('.')) k++;
            else if (k + 1 < t.Count && t[k].IsSymbol('-') && parts.Count == 1) { parts[0] += "-" + t[k + 1].Text; k += 2; if (k < t.Count && t[k].IsSymbol('.')) k++; }
            else break;
        }
        return parts.Count switch
        {
            >= 3 => new TableReference { ProjectId = string.Join(".", parts.Take(parts.Count - 2)), DatasetId = parts[^2], TableId = parts[^1] },
            2 => new TableReference { ProjectId = project, DatasetId = parts[0], TableId = parts[1] },
            1 when dataset is not null => new TableReference { ProjectId = project, DatasetId = dataset, TableId = parts[0] },
            _ => throw BigQueryError.InvalidQuery("Table name must be qualified with a dataset (e.g. dataset.table)."),
        };
    }

    private static List<TableFieldSchema> Columns(List<Token> t, int start, int end)
    {
        var fields = new List<TableFieldSchema>();
        var k = start;
        while (k < end)
        {
            var name = t[k].Value;
            k++;
            var field = FieldType(t, ref k, end);
            field.Name = name;
            while (k < end && !t[k].IsSymbol(','))
            {
                if (t[k].IsWord("NOT") && t[k + 1].IsWord("NULL")) { field.Mode = "REQUIRED"; k += 2; }
                else if (t[k].IsWord("OPTIONS") && t[k + 1].IsSymbol('('))
                {
                    var close = Close(t, k + 1);
                    var options = new Table();
                    Options(t, k + 2, close, options);
                    field.Description = options.Description;
                    k = close + 1;
                }
                else throw BigQueryError.InvalidQuery($"Unsupported in the BigQuery emulator: column option \"{t[k].Text}\".");
            }
            fields.Add(field);
            k++;
        }
        return fields;
    }

    private static TableFieldSchema FieldType(List<Token> t, ref int k, int end)
    {
        var word = t[k].Upper;
        k++;
        if (word == "ARRAY")
        {
            Expect(t, ref k, '<');
            var element = FieldType(t, ref k, end);
            Expect(t, ref k, '>');
            element.Mode = "REPEATED";
            return element;
        }
        if (word == "STRUCT")
        {
            Expect(t, ref k, '<');
            var fields = new List<TableFieldSchema>();
            while (true)
            {
                var name = t[k].Value;
                k++;
                var sub = FieldType(t, ref k, end);
                sub.Name = name;
                if (t[k].IsWord("NOT") && t[k + 1].IsWord("NULL")) { sub.Mode = "REQUIRED"; k += 2; }
                fields.Add(sub);
                if (t[k].IsSymbol(',')) { k++; continue; }
                Expect(t, ref k, '>');
                break;
            }
            return new TableFieldSchema { Type = "RECORD", Mode = "NULLABLE", Fields = fields };
        }
        if (k < end && t[k].IsSymbol('('))
        {
            k = Close(t, k) + 1;
        }
        var type = word switch
        {
            "INT64" or "INTEGER" or "INT" or "BIGINT" or "SMALLINT" or "TINYINT" or "BYTEINT" => "INTEGER",
            "FLOAT64" or "FLOAT" => "FLOAT",
            "BOOL" or "BOOLEAN" => "BOOLEAN",
            "DECIMAL" => "NUMERIC",
            "BIGDECIMAL" => "BIGNUMERIC",
            "STRING" or "BYTES" or "NUMERIC" or "BIGNUMERIC" or "TIMESTAMP" or "DATE" or "DATETIME" or "TIME" or "JSON" or "GEOGRAPHY" => word,
            _ => throw BigQueryError.InvalidQuery($"Unsupported in the BigQuery emulator: type {word}."),
        };
        return new TableFieldSchema { Type = type, Mode = "NULLABLE" };
    }

    private static TimePartitioning Partitioning(List<Token> t, ref int k)
    {
        // DATE(ts) | ts | TIMESTAMP_TRUNC(ts, HOUR) | DATE_TRUNC(d, MONTH) | _PARTITIONDATE
        var word = t[k];
        if (word.IsWord("_PARTITIONDATE") || word.IsWord("_PARTITIONTIME"))
        {
            k++;
            return new TimePartitioning { Type = "DAY" };
        }
        if (k + 1 < t.Count && t[k + 1].IsSymbol('('))
        {
            var close = Close(t, k + 1);
            var field = t[k + 2].Value;
            var type = "DAY";
            if (!word.IsWord("DATE"))
            {
                var partAt = close - 1;
                type = t[partAt].Upper;
            }
            k = close + 1;
            return new TimePartitioning { Type = type, Field = field };
        }
        k++;
        return new TimePartitioning { Type = "DAY", Field = word.Value };
    }

    private static void Options(List<Token> t, int start, int end, Table table)
    {
        var k = start;
        while (k < end)
        {
            var name = t[k].Upper;
            var value = t[k + 2];
            k += 3;
            switch (name)
            {
                case "DESCRIPTION": table.Description = value.Value; break;
                case "FRIENDLY_NAME": table.FriendlyName = value.Value; break;
                case "REQUIRE_PARTITION_FILTER": table.RequirePartitionFilter = value.IsWord("TRUE"); break;
            }
            // Skip the rest of a complex value (labels = [("a","b")]).
            while (k < end && !t[k].IsSymbol(','))
            {
                k = t[k].IsSymbol('(') || t[k].IsSymbol('[') ? Close(t, k) + 1 : k + 1;
            }
            k++;
        }
    }

    private static void Expect(List<Token> t, ref int k, char c)
    {
        if (k >= t.Count || !t[k].IsSymbol(c))
        {
            throw BigQueryError.InvalidQuery($"Syntax error: Expected \"{c}\" in a column type.");
        }
        k++;
    }

    private static int Close(List<Token> t, int open)
    {
        var (o, c) = t[open].IsSymbol('[') ? ('[', ']') : ('(', ')');
        var depth = 0;
        for (var k = open; k < t.Count; k++)
        {
            if (t[k].IsSymbol(o)) depth++;
            else if (t[k].IsSymbol(c) && --depth == 0) return k;
        }
        throw BigQueryError.InvalidQuery($"Syntax error: Unclosed \"{o}\".");
    }
}
