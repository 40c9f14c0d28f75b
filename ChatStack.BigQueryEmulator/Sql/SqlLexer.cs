using System.Text;
using ChatStack.BigQueryEmulator.Apis;

namespace ChatStack.BigQueryEmulator.Sql;

public enum TokenKind { Space, Ident, Quoted, String, Number, Param, Positional, Symbol }

/// <summary>A GoogleSQL token; Value is the identifier or the decoded string literal.</summary>
public readonly record struct Token(TokenKind Kind, string Text, string Value)
{
    public bool IsWord(string word) => Kind == TokenKind.Ident && Text.Equals(word, StringComparison.OrdinalIgnoreCase);

    public bool IsSymbol(char c) => Kind == TokenKind.Symbol && Text.Length == 1 && Text[0] == c;

    public string Upper => Text.ToUpperInvariant();
}

/// <summary>Splits GoogleSQL into tokens: backticks, '…'/"…"/r'…'/'''…''' strings, # and -- comments, @params.</summary>
public static class SqlLexer
{
    public static List<Token> Tokenize(string sql)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var start = i;
            if (char.IsWhiteSpace(c))
            {
                while (i < sql.Length && char.IsWhiteSpace(sql[i])) i++;
                tokens.Add(new(TokenKind.Space, sql[start..i], " "));
            }
            else if (c == '#' || (c == '-' && Next(sql, i) == '-'))
            {
                while (i < sql.Length && sql[i] != '\n') i++;
                tokens.Add(new(TokenKind.Space, " ", " "));
            }
            else if (c == '/' && Next(sql, i) == '*')
            {
                var end = sql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0) throw BigQueryError.InvalidQuery("Syntax error: Unclosed comment at [" + Position(sql, i) + "]");
                i = end + 2;
                tokens.Add(new(TokenKind.Space, " ", " "));
            }
            else if (c == '`')
            {
                var end = sql.IndexOf('`', i + 1);
                if (end < 0) throw BigQueryError.InvalidQuery("Syntax error: Unclosed identifier literal at [" + Position(sql, i) + "]");
                i = end + 1;
                tokens.Add(new(TokenKind.Quoted, sql[start..i], sql[(start + 1)..end]));
            }
            else if (c is '\'' or '"' || ((c is 'r' or 'R' or 'b' or 'B') && Next(sql, i) is '\'' or '"')
                     || ((c is 'r' or 'R' or 'b' or 'B') && (Next(sql, i) is 'r' or 'R' or 'b' or 'B') && i + 2 < sql.Length && sql[i + 2] is '\'' or '"'))
            {
                var raw = false;
                while (sql[i] is not ('\'' or '"'))
                {
                    raw |= sql[i] is 'r' or 'R';
                    i++;
                }
                tokens.Add(ReadString(sql, ref i, start, raw));
            }
            else if (char.IsDigit(c) || (c == '.' && char.IsDigit(Next(sql, i))))
            {
                while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] == '.' ||
                       ((sql[i] == '+' || sql[i] == '-') && (sql[i - 1] == 'e' || sql[i - 1] == 'E')))) i++;
                tokens.Add(new(TokenKind.Number, sql[start..i], sql[start..i]));
            }
            else if (char.IsLetter(c) || c == '_')
            {
                while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] == '_')) i++;
                tokens.Add(new(TokenKind.Ident, sql[start..i], sql[start..i]));
            }
            else if (c == '@')
            {
                i++;
                if (i < sql.Length && sql[i] == '@') i++;
                while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] == '_')) i++;
                tokens.Add(new(TokenKind.Param, sql[start..i], sql[(start + 1)..i]));
            }
            else if (c == '?')
            {
                i++;
                tokens.Add(new(TokenKind.Positional, "?", "?"));
            }
            else
            {
                i++;
                tokens.Add(new(TokenKind.Symbol, c.ToString(), c.ToString()));
            }
        }
        return tokens;
    }

    private static char Next(string s, int i) => i + 1 < s.Length ? s[i + 1] : '\0';

    private static Token ReadString(string sql, ref int i, int start, bool raw)
    {
        var quote = sql[i];
        var triple = i + 2 < sql.Length && sql[i + 1] == quote && sql[i + 2] == quote;
        i += triple ? 3 : 1;
        var value = new StringBuilder();
        while (true)
        {
            if (i >= sql.Length)
            {
                throw BigQueryError.InvalidQuery("Syntax error: Unclosed string literal at [" + Position(sql, start) + "]");
            }
            var c = sql[i];
            if (c == quote && (!triple || (i + 2 < sql.Length && sql[i + 1] == quote && sql[i + 2] == quote)))
            {
                i += triple ? 3 : 1;
                break;
            }
            if (c == '\\' && i + 1 < sql.Length)
            {
                if (raw)
                {
                    value.Append(c).Append(sql[i + 1]);
                    i += 2;
                    continue;
                }
                var e = sql[i + 1];
                i += 2;
                value.Append(e switch
                {
                    'n' => "\n", 't' => "\t", 'r' => "\r", '0' => "\0", 'a' => "\a", 'b' => "\b", 'f' => "\f", 'v' => "\v",
                    'u' when i + 4 <= sql.Length => ((char)Convert.ToInt32(sql.Substring(i, 4), 16)).ToString(),
                    _ => e.ToString(),
                });
                if (e == 'u') i += 4;
                continue;
            }
            if (!triple && c == '\n')
            {
                throw BigQueryError.InvalidQuery("Syntax error: Unclosed string literal at [" + Position(sql, start) + "]");
            }
            value.Append(c);
            i++;
        }
        return new Token(TokenKind.String, sql[start..i], value.ToString());
    }

    public static string Position(string sql, int index)
    {
        var line = 1;
        var column = 1;
        for (var k = 0; k < index && k < sql.Length; k++)
        {
            if (sql[k] == '\n') { line++; column = 1; } else column++;
        }
        return $"{line}:{column}";
    }
}
