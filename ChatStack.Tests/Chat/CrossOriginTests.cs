using System.Net;
using System.Text;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Chat;

/// <summary>A browser frontend on another origin, as the browser's CORS checks see the chat API over real HTTP.</summary>
public class CrossOriginTests
{
    private const string Frontend = "http://localhost:3000";

    private static Task<ChatApiHost> StartAsync(params (string Key, string Value)[] settings)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["ENABLE_FIRESTORE_WRITE"] = "false",
            ["ENABLE_PUBSUB"] = "false",
            ["Chat:Offline:DeltaDelayMs"] = "0",
        };
        foreach (var (key, value) in settings)
        {
            configuration[key] = value;
        }

        return ChatApiHost.StartAsync("127.0.0.1:9", configuration);
    }

    private static HttpRequestMessage Preflight(string origin, string path = "/api/chat") => new(HttpMethod.Options, path)
    {
        Headers =
        {
            { "Origin", origin },
            { "Access-Control-Request-Method", "POST" },
            { "Access-Control-Request-Headers", "authorization,content-type" },
        },
    };

    private static HttpRequestMessage ChatFromFrontend(string json) => new(HttpMethod.Post, "/api/chat")
    {
        Content = new StringContent(json, Encoding.UTF8, "application/json"),
        Headers = { { "Origin", Frontend } },
    };

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    [Fact]
    public async Task A_configured_origin_may_call_the_api_and_read_its_ids_and_errors_and_no_other_origin_may()
    {
        await using var host = await StartAsync(("Cors:AllowedOrigins:0", Frontend));
        var client = await ChatApiClient.SignInAsync(host.Address, "cross-origin");

        // The preflight carries no token: answered before authentication.
        using (var preflight = await client.Http.SendAsync(Preflight(Frontend)))
        {
            Assert.Equal(HttpStatusCode.NoContent, preflight.StatusCode);
            Assert.Equal(Frontend, Header(preflight, "Access-Control-Allow-Origin"));
            Assert.Contains("POST", Header(preflight, "Access-Control-Allow-Methods"));
            Assert.Contains("Authorization", Header(preflight, "Access-Control-Allow-Headers"));
        }

        using (var answered = await client.Http.SendAsync(ChatFromFrontend("{\"message\":\"hello\"}")))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
            Assert.Equal(Frontend, Header(answered, "Access-Control-Allow-Origin"));
            Assert.Contains("X-Session-Id", Header(answered, "Access-Control-Expose-Headers"));
            Assert.Contains("X-Stream-Id", Header(answered, "Access-Control-Expose-Headers"));
        }

        // A refusal is readable by the frontend too, or it could only say "network error".
        using (var problem = await client.Http.SendAsync(ChatFromFrontend("{\"message\":\"\"}")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, problem.StatusCode);
            Assert.Equal(Frontend, Header(problem, "Access-Control-Allow-Origin"));
        }

        using var foreign = await client.Http.SendAsync(Preflight("http://elsewhere.example"));
        Assert.Null(Header(foreign, "Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task Origins_may_come_as_one_comma_separated_value_as_a_deployment_parameter_gives_them()
    {
        await using var host = await StartAsync(("Cors:AllowedOrigins", $"{Frontend}, https://app.example.com"));
        using var http = host.CreateClient();

        foreach (var origin in new[] { Frontend, "https://app.example.com" })
        {
            using var preflight = await http.SendAsync(Preflight(origin));
            Assert.Equal(origin, Header(preflight, "Access-Control-Allow-Origin"));
        }
    }

    [Fact]
    public async Task Without_configured_origins_no_other_origin_may_call_the_api()
    {
        await using var host = await StartAsync();
        using var http = host.CreateClient();

        using var preflight = await http.SendAsync(Preflight(Frontend));

        Assert.Null(Header(preflight, "Access-Control-Allow-Origin"));
    }

    [Theory]
    [InlineData("http://localhost:3000/")]
    [InlineData("localhost:3000")]
    [InlineData("http://localhost:3000/app")]
    public async Task An_allowed_origin_that_is_not_an_origin_stops_start_up_saying_how_to_write_one(string origin)
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(("Cors:AllowedOrigins:0", origin)));

        Assert.Contains($"Cors:AllowedOrigins holds '{origin}', which is not an origin: write scheme://host[:port]", failure.Message);
    }
}
