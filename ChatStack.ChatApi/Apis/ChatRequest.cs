using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace ChatStack.ChatApi.Apis;

/// <summary>The body of <c>POST /api/chat</c>. There is no user id here: it comes from the token.</summary>
/// <remarks>Request bodies refuse unknown fields (<see cref="JsonBody"/>); the attribute also puts <c>additionalProperties: false</c> in the OpenAPI document.</remarks>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record ChatRequest
{
    /// <summary>Continue this session; omit to start a new one.</summary>
    [JsonPropertyName("session_id")] public string? SessionId { get; init; }

    [JsonPropertyName("message")] public string? Message { get; init; }

    /// <summary>A configured model name; omit for the default.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>The most tokens this request may spend.</summary>
    [JsonPropertyName("budget_max")] public int? BudgetMax { get; init; }
}

/// <summary>The body of <c>PATCH /api/sessions/{id}</c>: what a user may change about a session.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record SessionUpdate
{
    /// <summary>The new title: one line of text, at most <c>ChatApis.MaxTitleChars</c> characters.</summary>
    [JsonPropertyName("title")] public string? Title { get; init; }
}

/// <summary>The body of <c>GET /api/models</c>: what a client may send as <c>model</c>, and what it gets when it sends none.</summary>
internal sealed record ModelList(
    [property: JsonPropertyName("default_model")] string DefaultModel,
    [property: JsonPropertyName("models")] IReadOnlyList<ModelInfo> Models);

/// <summary>One configured model, as much as a client needs to choose it and plan a budget; never its endpoint or key.</summary>
internal sealed record ModelInfo(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("provider")] string Provider,
    [property: JsonPropertyName("encoding")] string Encoding,
    [property: JsonPropertyName("context_window")] int ContextWindow,
    [property: JsonPropertyName("max_output_tokens")] int MaxOutputTokens);

/// <summary>A development token request.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record DevTokenRequest([property: JsonPropertyName("user_id")] string? UserId);

internal sealed record DevTokenResponse(
    [property: JsonPropertyName("access_token")] string AccessToken,
    [property: JsonPropertyName("token_type")] string TokenType,
    [property: JsonPropertyName("expires_in")] int ExpiresIn);

internal static partial class Ids
{
    /// <summary>
    /// Safe as a Firestore document id and in a URL: letters, digits, '-' and '_', at most 128. Firestore forbids
    /// '/', '.' and '..', and ids of the form __x__; this is stricter on purpose.
    /// </summary>
    public static bool IsSafe(string? id) => id is not null && SafeId().IsMatch(id) && !(id.StartsWith("__", StringComparison.Ordinal) && id.EndsWith("__", StringComparison.Ordinal));

    // \z, not $: $ also matches before a final "\n", which would let "abc\n" through.
    [GeneratedRegex(@"^[A-Za-z0-9_-]{1,128}\z")]
    private static partial Regex SafeId();

    [GeneratedRegex(@"^[A-Za-z0-9_.@-]{1,128}\z")]
    public static partial Regex UserId();
}
