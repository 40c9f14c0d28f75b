using System.Globalization;

namespace ChatStack.BigQueryEmulator.Storage;

/// <summary>BigQuery's textual timestamp forms: ISO 8601 with T or a space, and a zone as Z, ±hh:mm or " UTC".</summary>
public static class BigQueryText
{
    public static bool TryParseTimestamp(string text, out DateTimeOffset value)
    {
        var s = text.Trim();
        if (s.EndsWith(" UTC", StringComparison.OrdinalIgnoreCase))
        {
            s = s[..^4] + "Z";
        }
        s = s.Replace(' ', 'T');
        // "+00" without minutes is common in BigQuery output.
        if (s.Length > 3 && (s[^3] == '+' || s[^3] == '-') && s.IndexOf('T') > 0 && s.IndexOf('T') < s.Length - 3)
        {
            s += ":00";
        }
        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }
}
