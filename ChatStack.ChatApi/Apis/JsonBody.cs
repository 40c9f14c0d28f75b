using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace ChatStack.ChatApi.Apis;

/// <summary>
/// Reads a JSON request body within the size limit. What is wrong with a refused body is said in the API's terms
/// (the field as sent, what it must be, what came), never in .NET's: a client knows no <c>System.Nullable`1</c>.
/// </summary>
internal static class JsonBody
{
    // Unknown fields are refused, as OpenAI's and Google's APIs do: a misspelt "budget" would otherwise be ignored
    // silently and the request would run on the default budget.
    internal static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The body as <typeparamref name="T"/>, or the problem for the first thing wrong with it (<paramref name="what"/> names the body in messages).</summary>
    public static async Task<(T? Body, IResult? Problem)> ReadAsync<T>(HttpContext context, int maxBytes, string what) where T : class
    {
        if (!context.Request.HasJsonContentType())
        {
            return (null, Problems.Create(context, StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
                "Send the request as application/json."));
        }

        if (context.Request.ContentLength > maxBytes)
        {
            return (null, TooLarge(context, maxBytes));
        }

        // Read at most one chunk past the limit, whatever Content-Length claimed (or chunked bodies without it).
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > maxBytes)
            {
                return (null, TooLarge(context, maxBytes));
            }
        }

        var json = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        try
        {
            return JsonSerializer.Deserialize<T>(json.Span, Options) is { } body
                ? (body, null)
                : (null, Invalid(context, null, $"The body must be a JSON object ({what}), not null."));
        }
        catch (JsonException e)
        {
            return (null, Describe(context, Options.GetTypeInfo(typeof(T)), json, e, what));
        }
    }

    private static IResult TooLarge(HttpContext context, int maxBytes) =>
        Problems.Create(context, StatusCodes.Status413PayloadTooLarge, "request-too-large", "Request too large",
            $"The request body is larger than {maxBytes} bytes.", new() { ["max_request_bytes"] = maxBytes });

    // Only refused bodies get here, so parsing them a second time to say what is wrong costs nothing that matters.
    private static IResult Describe(HttpContext context, JsonTypeInfo type, ReadOnlyMemory<byte> json, JsonException error, string what)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException syntax)
        {
            var detail = json.IsEmpty
                ? $"The body is empty: send {what} as a JSON object."
                : $"The body is not valid JSON (line {syntax.LineNumber + 1}, byte {syntax.BytePositionInLine + 1}): {ReaderReason(syntax.Message)}";
            return Problems.Create(context, StatusCodes.Status400BadRequest, "malformed-json", "Malformed JSON", detail);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return Invalid(context, null, $"The body must be a JSON object ({what}), not {Shown(root)}.");
            }

            var fields = string.Join(", ", type.Properties.Select(p => p.Name));
            foreach (var property in root.EnumerateObject())
            {
                if (Field(type, property.Name) is not { } field)
                {
                    return Invalid(context, property.Name, $"'{property.Name}' is not a field of {what}; its fields are {fields}.");
                }

                // Deserialization stops at the first bad value, which is this one if its JSON kind cannot be the field's type.
                if (!Fits(field.PropertyType, property.Value))
                {
                    return Invalid(context, field.Name, IsWholeNumberField(field.PropertyType) && property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetDecimal(out var number) && number == decimal.Truncate(number)
                        ? $"'{field.Name}' is out of range: {property.Value.GetRawText()}."
                        : $"'{field.Name}' must be {Expected(field.PropertyType)}, not {Shown(property.Value)}.");
                }
            }

            // Every value has a kind its field takes, yet one could not be read (a string with a lone surrogate escaped,
            // say): the serializer's path names the field.
            var failed = error.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? Field(type, path[2..]) : null;
            if (failed is null)
            {
                return Invalid(context, null, $"The body is not valid as {what}; its fields are {fields}.");
            }

            // A client that cuts a string inside an emoji (JavaScript's slice counts UTF-16 units) sends half a pair.
            return root.EnumerateObject().FirstOrDefault(p => Field(type, p.Name) == failed) is { Value.ValueKind: JsonValueKind.String } sent
                && UnpairedSurrogate(sent.Value.GetRawText()) is { } half
                ? Invalid(context, failed.Name, $"'{failed.Name}' contains {half}, half of a UTF-16 surrogate pair without its other half; send well-formed Unicode text (cutting a string inside an emoji leaves one).")
                : Invalid(context, failed.Name, $"'{failed.Name}' has a value that cannot be read as {Expected(failed.PropertyType)}.");
        }
    }

    // The first \uD800-\uDFFF escape of a JSON string (quotes included) that is not one half of a pair, as written.
    private static string? UnpairedSurrogate(string raw)
    {
        static int Unit(string raw, int at) =>
            at + 6 <= raw.Length && raw[at] == '\\' && raw[at + 1] == 'u'
            && int.TryParse(raw.AsSpan(at + 2, 4), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var unit)
                ? unit : -1;

        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] != '\\')
            {
                continue;
            }

            var unit = Unit(raw, i);
            if (unit < 0)
            {
                i++; // another escape (\\, \", \n…): skip the character it escapes
                continue;
            }

            if (char.IsHighSurrogate((char)unit) && char.IsLowSurrogate((char)Math.Max(0, Unit(raw, i + 6))))
            {
                i += 11;
            }
            else if (char.IsSurrogate((char)unit))
            {
                return raw.Substring(i, 6);
            }
            else
            {
                i += 5;
            }
        }

        return null;
    }

    private static IResult Invalid(HttpContext context, string? field, string detail) =>
        Problems.Create(context, StatusCodes.Status400BadRequest, "invalid-body", "Invalid request body", detail, field: field);

    // Web defaults match names case-insensitively; so does this.
    private static JsonPropertyInfo? Field(JsonTypeInfo type, string name) =>
        type.Properties.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    private static bool Fits(Type type, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return !type.IsValueType || Nullable.GetUnderlyingType(type) is not null;
        }

        type = Nullable.GetUnderlyingType(type) ?? type;
        return type == typeof(string) ? value.ValueKind == JsonValueKind.String
            : type == typeof(int) ? value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out _)
                || value.ValueKind == JsonValueKind.String && int.TryParse(value.GetString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out _) // Web defaults read numbers from strings
            : type == typeof(bool) ? value.ValueKind is JsonValueKind.True or JsonValueKind.False
            : true;
    }

    private static bool IsWholeNumberField(Type type) => (Nullable.GetUnderlyingType(type) ?? type) == typeof(int);

    private static string Expected(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type == typeof(string) ? "a string"
            : type == typeof(int) ? "a whole number"
            : type == typeof(bool) ? "true or false"
            : "another kind of value";
    }

    // The value as the client sent it, cut short, so the message shows which one was meant.
    private static string Shown(JsonElement value)
    {
        var kind = value.ValueKind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "an array",
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        };
        var raw = value.GetRawText();
        return value.ValueKind == JsonValueKind.Null ? kind : $"{kind} ({(raw.Length <= 40 ? raw : raw[..37] + "...")})";
    }

    // The reader's own sentence, without its position (given separately, counted from 1) and its advice to change
    // reader options, which are ours and not the client's.
    private static string ReaderReason(string message)
    {
        var end = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        var reason = (end >= 0 ? message[..end] : message).Replace(" Change the reader options.", "", StringComparison.Ordinal).TrimEnd(' ', '|');
        var path = reason.IndexOf(" Path:", StringComparison.Ordinal);
        return path >= 0 ? reason[..path].TrimEnd() : reason;
    }
}
