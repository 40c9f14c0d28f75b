using System.Net;
using System.Text;
using System.Text.Json;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>The chat API in process on its in-memory store, shared by the cases: refused bodies touch no store.</summary>
public sealed class InMemoryChatApi : IAsyncLifetime
{
    public ChatApiHost Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await ChatApiHost.StartOnStoreAsync(firestore: false, firestoreHost: "");

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>
/// A refused JSON body is told what is wrong in the API's terms: the field as sent, what it must be, what came, and
/// where broken JSON breaks; never a .NET type name. Unknown fields are refused rather than ignored.
/// </summary>
public class RequestBodyTests(InMemoryChatApi api) : IClassFixture<InMemoryChatApi>
{
    [Theory]
    [InlineData("{\"message\":5}", "invalid-body", "message", "'message' must be a string, not a number (5)")]
    [InlineData("{\"message\":\"hi\",\"session_id\":5}", "invalid-body", "session_id", "'session_id' must be a string, not a number (5)")]
    [InlineData("{\"message\":\"hi\",\"model\":[\"a\"]}", "invalid-body", "model", "'model' must be a string, not an array ([\"a\"])")]
    [InlineData("{\"message\":\"hi\",\"budget_max\":1.5}", "invalid-body", "budget_max", "'budget_max' must be a whole number, not a number (1.5)")]
    [InlineData("{\"message\":\"hi\",\"budget_max\":\"lots\"}", "invalid-body", "budget_max", "'budget_max' must be a whole number, not a string (\"lots\")")]
    [InlineData("{\"message\":\"hi\",\"budget_max\":99999999999}", "invalid-body", "budget_max", "'budget_max' is out of range: 99999999999")]
    [InlineData("{\"message\":\"\\ud800\"}", "invalid-body", "message", "'message' contains \\ud800, half of a UTF-16 surrogate pair without its other half; send well-formed Unicode text")]
    [InlineData("{\"message\":\"a \\\\ud800 \\ud83d\\ude00 cut \\ud83d\"}", "invalid-body", "message", "'message' contains \\ud83d, half of a UTF-16 surrogate pair")]
    [InlineData("{\"message\":\"\\uDC00x\"}", "invalid-body", "message", "'message' contains \\uDC00, half of a UTF-16 surrogate pair")]
    [InlineData("{\"message\":\"hi\",\"budget\":100}", "invalid-body", "budget", "'budget' is not a field of a chat request; its fields are session_id, message, model, budget_max")]
    [InlineData("{\"message\":\"hi\",\"user_id\":\"the-owner\"}", "invalid-body", "user_id", "'user_id' is not a field of a chat request")]
    [InlineData("[1]", "invalid-body", null, "The body must be a JSON object (a chat request), not an array ([1])")]
    [InlineData("null", "invalid-body", null, "The body must be a JSON object (a chat request), not null")]
    [InlineData("", "malformed-json", null, "The body is empty: send a chat request as a JSON object")]
    [InlineData("{\"message\":\"hi\",}", "malformed-json", null, "The body is not valid JSON (line 1, byte 17): The JSON object contains a trailing comma")]
    [InlineData("{\"message\":\n \"hi\"", "malformed-json", null, "The body is not valid JSON (line 2, byte 6)")]
    [InlineData("{\"message\":\"hi\"} x", "malformed-json", null, "'x' is invalid after a single JSON value")]
    // Well-formed but refused by the API's rules: the field is named the same way.
    [InlineData("{\"message\":\"   \"}", "empty-message", "message", "message is required and must contain text")]
    [InlineData("{\"message\":\"hi\",\"budget_max\":10}", "budget-out-of-range", "budget_max", "budget_max must be between 64 and 32000")]
    [InlineData("{\"message\":\"hi\",\"model\":\"gpt-imaginary\"}", "unknown-model", "model", "'gpt-imaginary' is not a configured model")]
    [InlineData("{\"message\":\"hi\",\"session_id\":\"../etc\"}", "invalid-session-id", "session_id", "A session id is 1-128 characters")]
    [InlineData("{\"message\":\"hi\",\"session_id\":\"abc\\n\"}", "invalid-session-id", "session_id", "A session id is 1-128 characters")]
    public async Task A_refused_chat_request_says_what_is_wrong_in_the_apis_terms(string body, string code, string? field, string detail)
    {
        var client = await ChatApiClient.SignInAsync(api.Host.Address, "body-" + code);

        using var response = await client.PostRawAsync(body);

        await AssertRefusedAsync(response, code, field, detail);
        (await OpenApiContract.LoadAsync(client.Http)).AssertDeclares(response);
    }

    [Fact]
    public async Task A_refused_value_is_logged_on_one_line_of_bounded_length()
    {
        // Values quoted in a problem come from the client, before any rate limit: a model name with line breaks
        // wrote lines of its own into the log (one entry each on Cloud Run), and 64 KB of it went in whole.
        var logs = new FakeLogCollector();
        await using var host = await ChatApiHost.StartAsync("127.0.0.1:9", new Dictionary<string, string?>
        {
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_PUBSUB"] = "false",
            ["Logging:LogLevel:ChatStack.ChatApi.Problems"] = "Information",
        }, configure: b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "log-forger");
        var model = "gpt\n2026-11-27 info: ChatStack admin logged in\r\n" + new string('x', 20_000);

        using var response = await client.PostRawAsync(JsonSerializer.Serialize(new { message = "hi", model }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var logged = Assert.Single(logs.GetSnapshot(), r => r.Category == "ChatStack.ChatApi.Problems").Message;
        Assert.DoesNotContain('\n', logged);
        Assert.DoesNotContain('\r', logged);
        Assert.Contains("'gpt\\u000a2026-11-27 info: ChatStack admin logged in\\u000d\\u000axxx", logged);
        Assert.True(logged.Length < 700, $"{logged.Length} characters logged");
    }

    [Fact]
    public async Task Fields_are_matched_as_the_web_does_and_a_refused_body_spends_nothing()
    {
        var client = await ChatApiClient.SignInAsync(api.Host.Address, "body-accepted");
        using (var refused = await client.PostRawAsync("{\"message\":\"Spend nothing.\",\"budget\":100}"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        // Names in any case, a number as a string and an explicit null are taken, as ASP.NET Core's web defaults take them.
        using (var accepted = await client.PostRawAsync("{\"Message\":\"Hello there.\",\"budget_max\":\"2000\",\"session_id\":null}"))
        {
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
            var done = (await Sse.ReadAllAsync(accepted)).Single(e => e.Event == "done").Payload;
            Assert.Equal(2000, done.GetProperty("usage").GetProperty("budget_max").GetInt32());
        }

        var sessions = (await client.GetJsonAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().ToList();
        var session = Assert.Single(sessions);
        Assert.Equal("Hello there.", session.GetProperty("title").GetString());
        Assert.Equal(2, session.GetProperty("message_count").GetInt32());
    }

    [Theory]
    [InlineData("{\"user_id\":5}", "invalid-body", "user_id", "'user_id' must be a string, not a number (5)")]
    [InlineData("{\"user\":\"alice\"}", "invalid-body", "user", "'user' is not a field of a token request; its fields are user_id")]
    [InlineData("{bad", "malformed-json", null, "The body is not valid JSON (line 1, byte 2)")]
    [InlineData("", "malformed-json", null, "The body is empty: send a token request as a JSON object")]
    [InlineData("{}", "invalid-user-id", "user_id", "user_id must be 1-128 characters")]
    [InlineData("{\"user_id\":\"alice\\n\"}", "invalid-user-id", "user_id", "user_id must be 1-128 characters")]
    public async Task A_refused_development_token_request_says_what_is_wrong(string body, string code, string? field, string detail)
    {
        using var http = api.Host.CreateClient();

        using var response = await http.PostAsync("/api/dev/token", new StringContent(body, Encoding.UTF8, "application/json"));

        await AssertRefusedAsync(response, code, field, detail);
        (await OpenApiContract.LoadAsync(http)).AssertDeclares(response);
    }

    [Fact]
    public async Task The_openapi_document_says_request_bodies_take_no_other_fields()
    {
        using var http = api.Host.CreateClient();
        var document = JsonDocument.Parse(await http.GetStringAsync("/openapi/v1.json")).RootElement;

        var schemas = document.GetProperty("components").GetProperty("schemas");
        foreach (var body in new[] { "ChatRequest", "SessionUpdate", "DevTokenRequest" })
        {
            Assert.True(schemas.GetProperty(body).TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False,
                $"{body}: additionalProperties is false");
        }

        var tokenBody = document.GetProperty("paths").GetProperty("/api/dev/token").GetProperty("post").GetProperty("requestBody");
        Assert.Equal("#/components/schemas/DevTokenRequest", tokenBody.GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString());
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, string code, string? field, string detail)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"expected 400, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Equal(field, problem.TryGetProperty("field", out var named) ? named.GetString() : null);
        var said = problem.GetProperty("detail").GetString()!;
        Assert.Contains(detail, said);
        // What the serializer says for itself is not the client's business.
        Assert.DoesNotContain("System.", said);
        Assert.DoesNotContain("ChatStack.", said);
        Assert.DoesNotContain("LineNumber", said);
        Assert.DoesNotContain("reader options", said);
    }
}
