using System.ComponentModel;
using System.Globalization;
using System.Text.RegularExpressions;
using ChatStack.ChatApi.Sessions;
using Microsoft.SemanticKernel;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// The agent's tools, registered as kernel functions (plugin <c>tools</c>). One instance per run: the history
/// search sees only the session the run belongs to, through <paramref name="earlierMessages"/> (a turn reads only the
/// messages after the session's summary; a search needs them all, so it reads them page by page and keeps only its
/// best hits: a long session is searched in the memory of one page).
/// </summary>
internal sealed partial class ChatTools(Func<CancellationToken, IAsyncEnumerable<ChatMessageRecord>> earlierMessages, TimeProvider time)
{
    public const string PluginName = "tools";
    public const string TimeNow = "time_now";
    public const string Calculate = "calculate";
    public const string SearchHistory = "search_history";

    /// <summary>Hits a search returns.</summary>
    private const int SearchHits = 3;

    [KernelFunction(TimeNow), Description("The current date and time in an IANA time zone, e.g. Europe/Paris or Asia/Tokyo, or at a UTC offset such as UTC+05:30.")]
    public string GetTimeNow([Description("IANA time zone id, or a UTC offset")] string time_zone)
    {
        var id = time_zone.Trim();
        // The inner exception names the server's zoneinfo file; the model (and the user) need the id and an example.
        var zone = FindZone(id) ?? throw new ArgumentException($"Unknown time zone '{id}': use an IANA id such as Europe/Paris or Asia/Tokyo, or an offset such as UTC+05:30.");
        var now = TimeZoneInfo.ConvertTime(time.GetUtcNow(), zone);
        return $"{now:yyyy-MM-dd HH:mm} ({zone.Id}, UTC{now:zzz})";
    }

    /// <summary>The zone of an IANA id, in any case ("europe/paris"), or of a city a model passed instead ("Tokyo").</summary>
    private static TimeZoneInfo? FindZone(string id)
    {
        if (id.Length == 0)
        {
            return null;
        }

        // Before the system lookup, which answers some of these ("UTC+15", "UTC−8") with UTC itself.
        if (UtcOffsetRegex().Match(id) is { Success: true } offset)
        {
            return OffsetZone(offset);
        }

        if (TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone))
        {
            return zone;
        }

        return TimeZoneInfo.GetSystemTimeZones().FirstOrDefault(z => string.Equals(z.Id, id, StringComparison.OrdinalIgnoreCase))
            ?? (CityTimeZones.Find(id) is { } city && TimeZoneInfo.TryFindSystemTimeZoneById(city, out zone) ? zone : null);
    }

    /// <summary>A fixed offset as models write one: "UTC+5", "GMT-03:30", "+0530"; real ones run from -12 to +14 hours.</summary>
    private static TimeZoneInfo? OffsetZone(Match match)
    {
        var hours = int.Parse(match.Groups["h"].Value, CultureInfo.InvariantCulture);
        var minutes = match.Groups["m"].Success ? int.Parse(match.Groups["m"].Value, CultureInfo.InvariantCulture) : 0;
        var offset = new TimeSpan(hours, minutes, 0) * (match.Groups["sign"].Value == "+" ? 1 : -1);
        if (minutes % 15 != 0 || minutes >= 60 || offset < TimeSpan.FromHours(-12) || offset > TimeSpan.FromHours(14))
        {
            return null;
        }

        var name = $"UTC{(offset < TimeSpan.Zero ? "-" : "+")}{offset:hh\\:mm}";
        return TimeZoneInfo.CreateCustomTimeZone(name, offset, name, name);
    }

    [GeneratedRegex(@"^(?:(?:UTC|GMT)\s*)?(?<sign>[+\-−])\s*(?<h>\d{1,2})(?::?(?<m>\d{2}))?$", RegexOptions.IgnoreCase)]
    private static partial Regex UtcOffsetRegex();

    [KernelFunction(Calculate), Description("Evaluates an arithmetic expression: + - * / % ^ (or **), parentheses, 1e6 notation, the constants pi and e, and sqrt, cbrt, abs, exp, ln, log (base 10), log2, sin, cos, tan, asin, acos, atan (radians), floor, ceil, round.")]
    public string Evaluate([Description("the expression, e.g. (12.5 + 3) * 4")] string expression) =>
        Calculator.Evaluate(expression).ToString("G15", CultureInfo.InvariantCulture);

    [KernelFunction(SearchHistory), Description("Searches the earlier messages of this conversation for words.")]
    public async Task<string> SearchAsync([Description("words to look for")] string query, CancellationToken cancellationToken)
    {
        var terms = HistorySearch.Terms(query);
        // The best hits so far, most terms first, then newest; only their snippets are kept, not the messages.
        var hits = new List<(int Score, DateTimeOffset At, string Text)>(SearchHits + 1);
        await foreach (var message in earlierMessages(cancellationToken))
        {
            if (message.Role is not ("user" or "assistant") || HistorySearch.Match(message.Content, terms) is not { Score: > 0 } match)
            {
                continue;
            }

            // After every hit that ranks as high: of equals, the one read first stays first.
            var at = hits.FindIndex(h => h.Score < match.Score || (h.Score == match.Score && h.At < message.CreatedAt));
            if (at < 0 && hits.Count == SearchHits)
            {
                continue;
            }

            hits.Insert(at < 0 ? hits.Count : at, (match.Score, message.CreatedAt,
                $"[{message.Role} {message.CreatedAt:u}] {HistorySearch.Snippet(message.Content, match.FirstAt)}"));
            if (hits.Count > SearchHits)
            {
                hits.RemoveAt(SearchHits);
            }
        }

        return hits.Count == 0 ? $"No earlier message mentions '{query}'." : string.Join(" | ", hits.Select(h => h.Text));
    }
}

/// <summary>
/// A small recursive-descent evaluator: no code execution, just numbers, operators, a few functions and constants.
/// Precedence as in Python and mathematics: <c>-2^2</c> is -4, powers are right-associative, <c>%</c> is the
/// remainder with the dividend's sign.
/// </summary>
internal static class Calculator
{
    /// <summary>Functions of one argument; what models reach for besides the operators.</summary>
    public static readonly IReadOnlyDictionary<string, Func<double, double>> Functions = new Dictionary<string, Func<double, double>>(StringComparer.OrdinalIgnoreCase)
    {
        ["sqrt"] = Math.Sqrt, ["cbrt"] = Math.Cbrt, ["abs"] = Math.Abs, ["exp"] = Math.Exp,
        ["ln"] = Math.Log, ["log"] = Math.Log10, ["log10"] = Math.Log10, ["log2"] = Math.Log2,
        ["sin"] = Math.Sin, ["cos"] = Math.Cos, ["tan"] = Math.Tan, ["asin"] = Math.Asin, ["acos"] = Math.Acos, ["atan"] = Math.Atan,
        ["floor"] = Math.Floor, ["ceil"] = Math.Ceiling, ["round"] = x => Math.Round(x, MidpointRounding.AwayFromZero),
    };

    private static readonly Dictionary<string, double> Constants = new(StringComparer.OrdinalIgnoreCase)
    {
        ["pi"] = Math.PI, ["π"] = Math.PI, ["e"] = Math.E, ["tau"] = Math.Tau,
    };

    public static double Evaluate(string expression)
    {
        var position = 0;
        var value = ParseSum(expression, ref position);
        SkipSpaces(expression, ref position);
        if (position != expression.Length)
        {
            throw new FormatException($"Unexpected '{expression[position]}' at {position} in '{expression}'.");
        }

        return double.IsFinite(value) ? value : throw new ArithmeticException($"'{expression}' has no finite value.");
    }

    private static double ParseSum(string s, ref int i)
    {
        var value = ParseProduct(s, ref i);
        while (Peek(s, ref i) is '+' or '-' or '−')
        {
            var op = s[i++];
            var right = ParseProduct(s, ref i);
            value = op == '+' ? value + right : value - right;
        }

        return value;
    }

    private static double ParseProduct(string s, ref int i)
    {
        var value = ParseUnary(s, ref i);
        // "**" is a power, taken by ParsePower before it gets here.
        while (Peek(s, ref i) is '*' or '/' or '×' or '÷' or '%')
        {
            var op = s[i++];
            var right = ParseUnary(s, ref i);
            value = op switch
            {
                '*' or '×' => value * right,
                '%' => value % right,
                _ => value / right,
            };
        }

        return value;
    }

    // A sign binds less tightly than a power (-2^2 is -4) and may follow one (2^-1 is 0.5).
    private static double ParseUnary(string s, ref int i)
    {
        var c = Peek(s, ref i);
        if (c is '-' or '−' or '+')
        {
            i++;
            var operand = ParseUnary(s, ref i);
            return c == '+' ? operand : -operand;
        }

        return ParsePower(s, ref i);
    }

    private static double ParsePower(string s, ref int i)
    {
        var value = ParseAtom(s, ref i);
        // '**' as well as '^': models and people used to Python or JavaScript write powers that way.
        var power = Peek(s, ref i) == '^' ? 1 : s.AsSpan(i).StartsWith("**") ? 2 : 0;
        if (power > 0)
        {
            i += power;
            return Math.Pow(value, ParseUnary(s, ref i));
        }

        return value;
    }

    private static double ParseAtom(string s, ref int i)
    {
        var c = Peek(s, ref i);
        if (c == '(')
        {
            return ParseParenthesized(s, ref i);
        }

        if (char.IsLetter(c))
        {
            var name = s.AsSpan(i, LetterRun(s, i)).ToString();
            i += name.Length;
            if (Peek(s, ref i) == '(' && Functions.TryGetValue(name, out var function))
            {
                return function(ParseParenthesized(s, ref i));
            }

            return Constants.TryGetValue(name, out var constant)
                ? constant
                : throw new FormatException($"Unknown name '{name}' in '{s}': the calculator knows {string.Join(", ", Functions.Keys)} and pi, e, tau.");
        }

        return ParseNumber(s, ref i);
    }

    private static double ParseParenthesized(string s, ref int i)
    {
        i++;
        var value = ParseSum(s, ref i);
        if (Peek(s, ref i) != ')')
        {
            throw new FormatException($"Missing ')' in '{s}'.");
        }

        i++;
        return value;
    }

    private static double ParseNumber(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.'))
        {
            i++;
        }

        // An exponent only when digits follow, so "2e" stays an error and "2*e" the constant.
        var exponent = i < s.Length && start < i && s[i] is 'e' or 'E' ? i + 1 : -1;
        if (exponent > 0 && exponent < s.Length && s[exponent] is '+' or '-')
        {
            exponent++;
        }

        if (exponent > 0 && exponent < s.Length && char.IsAsciiDigit(s[exponent]))
        {
            i = exponent;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }
        }

        return start < i && double.TryParse(s.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
            ? number
            : throw new FormatException($"Expected a number at {start} in '{s}'.");
    }

    private static int LetterRun(string s, int i)
    {
        var end = i;
        while (end < s.Length && (char.IsLetter(s[end]) || (end > i && char.IsAsciiDigit(s[end]))))
        {
            end++;
        }

        return end - i;
    }

    private static char Peek(string s, ref int i)
    {
        SkipSpaces(s, ref i);
        return i < s.Length ? s[i] : '\0';
    }

    private static void SkipSpaces(string s, ref int i)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i]))
        {
            i++;
        }
    }
}
