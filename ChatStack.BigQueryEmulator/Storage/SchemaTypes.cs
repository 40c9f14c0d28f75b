using System.Text;
using System.Text.RegularExpressions;
using ChatStack.BigQueryEmulator.Apis;
using ChatStack.GoogleCloud.BigQuery;

namespace ChatStack.BigQueryEmulator.Storage;

/// <summary>BigQuery's column types, their DuckDB storage, and the schema rules tables.insert enforces.</summary>
public static partial class SchemaTypes
{
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

    /// <summary>A dataset is a DuckDB schema named "project.dataset", so translated SQL names it unambiguously.</summary>
    public static string SchemaName(string project, string dataset) => Quote(project + "." + dataset);

    public static string TableName(string project, string dataset, string table) => SchemaName(project, dataset) + "." + Quote(table);

    /// <summary>DuckDB DDL for a table schema; partitioning and clustering are metadata only.</summary>
    public static string CreateTableSql(string name, IReadOnlyList<TableFieldSchema> fields)
    {
        // DuckDB needs one column at least; BigQuery allows a table with no schema yet.
        var columns = fields.Count == 0 ? "\"__no_columns\" BOOLEAN" : string.Join(", ", fields.Select(f => Quote(f.Name!) + " " + ToDuckType(f)));
        return $"CREATE TABLE {name} ({columns})";
    }

    /// <summary>BigQuery's canonical name for a type, folding the legacy aliases.</summary>
    public static string Canonical(string? type) => (type ?? "").ToUpperInvariant() switch
    {
        "INT64" or "INTEGER" => "INTEGER",
        "FLOAT64" or "FLOAT" => "FLOAT",
        "BOOL" or "BOOLEAN" => "BOOLEAN",
        "STRUCT" or "RECORD" => "RECORD",
        var other => other,
    };

    public static string Mode(TableFieldSchema field) => string.IsNullOrEmpty(field.Mode) ? "NULLABLE" : field.Mode.ToUpperInvariant();

    public static string ToDuckType(TableFieldSchema field)
    {
        var type = ToDuckScalarType(field);
        return Mode(field) == "REPEATED" ? type + "[]" : type;
    }

    private static string ToDuckScalarType(TableFieldSchema field) => Canonical(field.Type) switch
    {
        "STRING" or "GEOGRAPHY" => "VARCHAR",
        "BYTES" => "BLOB",
        "INTEGER" => "BIGINT",
        "FLOAT" => "DOUBLE",
        // BigQuery NUMERIC is 38 digits with 9 after the point; DuckDB's default DECIMAL is (18,3).
        "NUMERIC" => "DECIMAL(38,9)",
        // DuckDB stops at 38 digits: BIGNUMERIC keeps 38 with 18 after the point here (documented limit).
        "BIGNUMERIC" => "DECIMAL(38,18)",
        "BOOLEAN" => "BOOLEAN",
        "TIMESTAMP" => "TIMESTAMPTZ",
        "DATETIME" => "TIMESTAMP",
        "DATE" => "DATE",
        "TIME" => "TIME",
        "JSON" => "JSON",
        "RECORD" => "STRUCT(" + string.Join(", ", field.Fields!.Select(f => Quote(f.Name!) + " " + ToDuckType(f))) + ")",
        var other => throw BigQueryError.Invalid($"Invalid value for type: {other} is not a valid value", "schema"),
    };

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,299}$")]
    private static partial Regex FieldName();

    private static readonly HashSet<string> KnownTypes =
        ["STRING", "BYTES", "INTEGER", "FLOAT", "NUMERIC", "BIGNUMERIC", "BOOLEAN", "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "JSON", "RECORD"];

    /// <summary>Checks a schema as tables.insert does and normalises type and mode names.</summary>
    public static void Validate(List<TableFieldSchema>? fields, string path = "")
    {
        if (fields is null || fields.Count == 0)
        {
            if (path.Length > 0)
            {
                throw BigQueryError.Invalid($"Field {path} is type RECORD but has no schema.");
            }
            return;
        }

        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var field in fields)
        {
            var name = field.Name ?? "";
            if (!FieldName().IsMatch(name))
            {
                throw BigQueryError.Invalid($"Invalid field name \"{name}\". Fields must contain only letters, numbers, and underscores, start with a letter or underscore, and be at most 300 characters long.");
            }
            if (!seen.Add(name))
            {
                throw BigQueryError.Invalid($"Field {path}{name} already exists in schema", "schema");
            }
            field.Type = Canonical(field.Type);
            if (!KnownTypes.Contains(field.Type))
            {
                throw BigQueryError.Invalid($"Invalid value for type: {field.Type} is not a valid value", "schema");
            }
            field.Mode = Mode(field);
            if (field.Mode is not ("NULLABLE" or "REQUIRED" or "REPEATED"))
            {
                throw BigQueryError.Invalid($"Invalid value for mode: {field.Mode} is not a valid value", "schema");
            }
            if (field.Type == "RECORD")
            {
                Validate(field.Fields, path + name + ".");
            }
            else if (field.Fields is { Count: > 0 })
            {
                throw BigQueryError.Invalid($"Field {path}{name} is type {field.Type} and cannot have subfields.", "schema");
            }
        }
    }

    /// <summary>BigQuery's schema for a DuckDB result column, from the type text DESCRIBE prints.</summary>
    public static TableFieldSchema FromDuckType(string name, string duckType)
    {
        var parser = new DuckTypeParser(duckType);
        var field = parser.Parse(name);
        return field;
    }

    private sealed class DuckTypeParser(string text)
    {
        private int _pos;

        public TableFieldSchema Parse(string name)
        {
            var field = ParseType(name);
            SkipSpaces();
            return field;
        }

        private TableFieldSchema ParseType(string name)
        {
            SkipSpaces();
            var word = ReadWord();
            TableFieldSchema field;
            if (word.Equals("STRUCT", StringComparison.OrdinalIgnoreCase))
            {
                Expect('(');
                var fields = new List<TableFieldSchema>();
                while (true)
                {
                    SkipSpaces();
                    var fieldName = ReadName();
                    fields.Add(ParseType(fieldName));
                    SkipSpaces();
                    if (Peek() == ',') { _pos++; continue; }
                    Expect(')');
                    break;
                }
                field = new TableFieldSchema { Name = name, Type = "RECORD", Mode = "NULLABLE", Fields = fields };
            }
            else
            {
                var full = new StringBuilder(word);
                // Multi-word names such as TIMESTAMP WITH TIME ZONE, and parameters such as DECIMAL(38,9).
                while (true)
                {
                    var save = _pos;
                    SkipSpaces();
                    if (Peek() == '(')
                    {
                        var close = text.IndexOf(')', _pos);
                        full.Append(text, _pos, close - _pos + 1);
                        _pos = close + 1;
                        continue;
                    }
                    var next = PeekWord();
                    if (next is "WITH" or "TIME" or "ZONE" or "PRECISION")
                    {
                        full.Append(' ').Append(ReadWord());
                        continue;
                    }
                    _pos = save;
                    break;
                }
                field = new TableFieldSchema { Name = name, Type = ScalarFromDuck(full.ToString()), Mode = "NULLABLE" };
            }

            SkipSpaces();
            if (_pos + 1 < text.Length && text[_pos] == '[' && text[_pos + 1] == ']')
            {
                _pos += 2;
                // BigQuery has no arrays of arrays; a nested list is reported as its JSON text.
                field = field.Mode == "REPEATED"
                    ? new TableFieldSchema { Name = name, Type = "JSON", Mode = "NULLABLE" }
                    : new TableFieldSchema { Name = name, Type = field.Type, Mode = "REPEATED", Fields = field.Fields };
            }
            return field;
        }

        private static string ScalarFromDuck(string type)
        {
            var upper = type.ToUpperInvariant();
            var bare = upper.Split('(')[0].Trim();
            return bare switch
            {
                "BIGINT" or "INTEGER" or "SMALLINT" or "TINYINT" or "HUGEINT" or "UBIGINT" or "UINTEGER" or "USMALLINT" or "UTINYINT" or "INT64" or "INT" => "INTEGER",
                "DOUBLE" or "FLOAT" or "REAL" or "DOUBLE PRECISION" => "FLOAT",
                "DECIMAL" or "NUMERIC" => upper.Contains(",18)") ? "BIGNUMERIC" : "NUMERIC",
                "BOOLEAN" => "BOOLEAN",
                "TIMESTAMP WITH TIME ZONE" or "TIMESTAMPTZ" => "TIMESTAMP",
                "TIMESTAMP" or "TIMESTAMP_NS" or "TIMESTAMP_MS" or "TIMESTAMP_S" => "DATETIME",
                "DATE" => "DATE",
                "TIME" => "TIME",
                "BLOB" => "BYTES",
                "JSON" => "JSON",
                _ => "STRING",
            };
        }

        private void SkipSpaces()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos])) _pos++;
        }

        private char Peek() => _pos < text.Length ? text[_pos] : '\0';

        private void Expect(char c)
        {
            SkipSpaces();
            if (Peek() != c)
            {
                throw new FormatException($"Expected '{c}' at {_pos} in type {text}");
            }
            _pos++;
        }

        private string ReadWord()
        {
            var start = _pos;
            while (_pos < text.Length && (char.IsLetterOrDigit(text[_pos]) || text[_pos] == '_')) _pos++;
            return text[start.._pos];
        }

        private string PeekWord()
        {
            var save = _pos;
            var word = ReadWord().ToUpperInvariant();
            _pos = save;
            return word;
        }

        private string ReadName()
        {
            if (Peek() != '"')
            {
                return ReadWord();
            }
            var sb = new StringBuilder();
            _pos++;
            while (_pos < text.Length)
            {
                if (text[_pos] == '"')
                {
                    if (_pos + 1 < text.Length && text[_pos + 1] == '"') { sb.Append('"'); _pos += 2; continue; }
                    _pos++;
                    break;
                }
                sb.Append(text[_pos++]);
            }
            return sb.ToString();
        }
    }
}
