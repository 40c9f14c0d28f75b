using System.Text;

namespace ChatStack.ChatApi.Agent;

/// <summary>
/// Finds a city in a message and gives its IANA time zone, for the offline model's <c>time_now</c> calls: every city
/// the server's time zone database names a zone after (<c>Europe/Lisbon</c>, <c>America/Sao_Paulo</c>), plus large
/// cities whose zone is named after another one (San Francisco is <c>America/Los_Angeles</c>).
/// </summary>
internal static class CityTimeZones
{
    private const int MaxWords = 3; // "Port of Spain", "Rio de Janeiro"

    // Zone cities that are everyday words ("what time is Easter dinner"), or places that share the name with better
    // known ones elsewhere ("New Jersey" is not Europe/Jersey, Norfolk, Virginia is not Pacific/Norfolk).
    private static readonly HashSet<string> Ambiguous = new(StringComparer.OrdinalIgnoreCase)
    {
        "Easter", "Christmas", "Wake", "Midway", "Reunion", "Oral", "Resolute", "Jersey", "Norfolk", "Chatham", "Stanley",
    };

    private static readonly (string City, string Zone)[] Aliases =
    [
        ("San Francisco", "America/Los_Angeles"), ("Seattle", "America/Los_Angeles"), ("San Diego", "America/Los_Angeles"),
        ("Washington", "America/New_York"), ("Boston", "America/New_York"), ("Miami", "America/New_York"), ("Atlanta", "America/New_York"),
        ("Houston", "America/Chicago"), ("Dallas", "America/Chicago"), ("Montreal", "America/Toronto"), ("Ottawa", "America/Toronto"),
        ("Rio de Janeiro", "America/Sao_Paulo"), ("Beijing", "Asia/Shanghai"), ("Shenzhen", "Asia/Shanghai"),
        ("Mumbai", "Asia/Kolkata"), ("Delhi", "Asia/Kolkata"), ("New Delhi", "Asia/Kolkata"), ("Bangalore", "Asia/Kolkata"),
        ("Bengaluru", "Asia/Kolkata"), ("Saigon", "Asia/Ho_Chi_Minh"), ("Osaka", "Asia/Tokyo"), ("Kyoto", "Asia/Tokyo"),
        ("Munich", "Europe/Berlin"), ("Frankfurt", "Europe/Berlin"), ("Hamburg", "Europe/Berlin"), ("Barcelona", "Europe/Madrid"),
        ("Milan", "Europe/Rome"), ("Geneva", "Europe/Zurich"), ("Edinburgh", "Europe/London"), ("Manchester", "Europe/London"),
        ("Kiev", "Europe/Kyiv"), ("Saint Petersburg", "Europe/Moscow"), ("St Petersburg", "Europe/Moscow"),
        ("Canberra", "Australia/Sydney"), ("Wellington", "Pacific/Auckland"), ("UTC", "UTC"), ("GMT", "UTC"),
    ];

    private static readonly Lazy<Dictionary<string, string>> Cities = new(Load);

    /// <summary>The zone of the first city named in <paramref name="message"/> (longest name first at each word), or null.</summary>
    public static string? Find(string message)
    {
        var words = Words(message);
        for (var i = 0; i < words.Count; i++)
        {
            for (var n = Math.Min(MaxWords, words.Count - i); n >= 1; n--)
            {
                if (Cities.Value.TryGetValue(string.Join(' ', words.GetRange(i, n)), out var zone))
                {
                    return zone;
                }
            }
        }

        return null;
    }

    private static Dictionary<string, string> Load()
    {
        var cities = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var zone in TimeZoneInfo.GetSystemTimeZones())
        {
            // Area/City only: three-part ids are counties and towns (America/Indiana/Knox), Antarctica's are stations.
            var parts = zone.Id.Split('/');
            if (parts.Length == 2 && parts[0] is not ("Etc" or "Antarctica" or "SystemV") && !Ambiguous.Contains(parts[1]))
            {
                cities.TryAdd(string.Join(' ', Words(parts[1].Replace('_', ' ').Replace('-', ' '))), zone.Id);
            }
        }

        foreach (var (city, zone) in Aliases)
        {
            cities.TryAdd(city, zone);
        }

        return cities;
    }

    /// <summary>Words without their accents ("São Paulo" → "Sao", "Paulo"), so a city is found however it is written.</summary>
    private static List<string> Words(string text)
    {
        var decomposed = text.Normalize(NormalizationForm.FormD);
        return HistorySearch.Words(decomposed)
            .Select(w => string.Concat(decomposed.AsSpan(w.Start, w.Length).ToArray().Where(c => !HistorySearch.IsMark(c))))
            .ToList();
    }
}
