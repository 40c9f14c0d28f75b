using System.ComponentModel;
using System.Globalization;
using ChatStack.ChatApi.Sessions;
using Microsoft.SemanticKernel;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// The agent's tools, registered as kernel functions (plugin <c>tools</c>). One instance per run: the history
/// search sees only the session the run belongs to, loaded by <paramref name="earlierMessages"/> when first searched
/// (a turn reads only the messages after the session's summary; a search needs them all).
/// </summary>
internal sealed class ChatTools(Func<CancellationToken, Task<IReadOnlyList<ChatMessageRecord>>> earlierMessages, TimeProvider time)
{
    public const string PluginName = "tools";
    public const string TimeNow = "time_now";
    public const string Calculate = "calculate";
    public const string SearchHistory = "search_history";

    private Task<IReadOnlyList<ChatMessageRecord>>? _history;

    [KernelFunction(TimeNow), Description("The current date and time in an IANA time zone, e.g. Europe/Paris or Asia/Tokyo.")]
    public string GetTimeNow([Description("IANA time zone id")] string time_zone)
    {
        var id = time_zone.Trim();
        // The inner exception names the server's zoneinfo file; the model (and the user) need the id and an example.
        var zone = FindZone(id) ?? throw new ArgumentException($"Unknown time zone '{id}': use an IANA id such as Europe/Paris or Asia/Tokyo.");
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

        if (TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone))
        {
            return zone;
        }

        return TimeZoneInfo.GetSystemTimeZones().FirstOrDefault(z => string.Equals(z.Id, id, StringComparison.OrdinalIgnoreCase))
            ?? (CityTimeZones.Find(id) is { } city && TimeZoneInfo.TryFindSystemTimeZoneById(city, out zone) ? zone : null);
    }

    [KernelFunction(Calculate), Description("Evaluates an arithmetic expression with + - * / ^ (or **) and parentheses.")]
    public string Evaluate([Description("the expression, e.g. (12.5 + 3) * 4")] string expression) =>
        Calculator.Evaluate(expression).ToString("G15", CultureInfo.InvariantCulture);

    [KernelFunction(SearchHistory), Description("Searches the earlier messages of this conversation for words.")]
    public async Task<string> SearchAsync([Description("words to look for")] string query, CancellationToken cancellationToken)
    {
        var terms = HistorySearch.Terms(query);
        // Loaded once per run, however many searches it makes; a failed load is tried again by the next search.
        if (_history is not { IsCompletedSuccessfully: true })
        {
            _history = earlierMessages(cancellationToken);
        }

        var hits = (await _history)
            .Where(m => m.Role is "user" or "assistant")
            .Select(m => (Message: m, Match: HistorySearch.Match(m.Content, terms)))
            .Where(h => h.Match.Score > 0)
            .OrderByDescending(h => h.Match.Score).ThenByDescending(h => h.Message.CreatedAt)
            .Take(3)
            .Select(h => $"[{h.Message.Role} {h.Message.CreatedAt:u}] {HistorySearch.Snippet(h.Message.Content, h.Match.FirstAt)}")
            .ToList();
        return hits.Count == 0 ? $"No earlier message mentions '{query}'." : string.Join(" | ", hits);
    }
}

/// <summary>A small recursive-descent evaluator: no code execution, just numbers and operators.</summary>
internal static class Calculator
{
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
        while (Peek(s, ref i) is '+' or '-')
        {
            var op = s[i++];
            var right = ParseProduct(s, ref i);
            value = op == '+' ? value + right : value - right;
        }

        return value;
    }

    private static double ParseProduct(string s, ref int i)
    {
        var value = ParsePower(s, ref i);
        while (Peek(s, ref i) is '*' or '/' or '×' or '÷')
        {
            var op = s[i++];
            var right = ParsePower(s, ref i);
            value = op is '*' or '×' ? value * right : value / right;
        }

        return value;
    }

    private static double ParsePower(string s, ref int i)
    {
        var value = ParseUnary(s, ref i);
        // '**' as well as '^': models and people used to Python or JavaScript write powers that way.
        var power = Peek(s, ref i) == '^' ? 1 : s.AsSpan(i).StartsWith("**") ? 2 : 0;
        if (power > 0)
        {
            i += power;
            return Math.Pow(value, ParsePower(s, ref i));
        }

        return value;
    }

    private static double ParseUnary(string s, ref int i)
    {
        var c = Peek(s, ref i);
        if (c == '-')
        {
            i++;
            return -ParseUnary(s, ref i);
        }

        if (c == '(')
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

        var start = i;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.'))
        {
            i++;
        }

        return start < i && double.TryParse(s.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
            ? number
            : throw new FormatException($"Expected a number at {start} in '{s}'.");
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
