using System.Net;
using System.Text;
using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Chat;

/// <summary>Ids in a URL are held to the same rule as in a body: the whole value, with nothing after it.</summary>
public class PathIdTests(InMemoryChatApi api) : IClassFixture<InMemoryChatApi>
{
    [Theory]
    [InlineData("GET", "/api/sessions/abc%0A", "invalid-session-id")]
    [InlineData("PATCH", "/api/sessions/abc%0A", "invalid-session-id")]
    [InlineData("DELETE", "/api/sessions/abc%0A", "invalid-session-id")]
    [InlineData("GET", "/api/sessions/abc%0A/messages", "invalid-session-id")]
    [InlineData("GET", "/api/sessions/abc/messages?after=m1%0A", "invalid-after")]
    public async Task An_id_with_a_trailing_newline_is_refused_not_looked_up(string method, string path, string code)
    {
        var client = await ChatApiClient.SignInAsync(api.Host.Address, "path-ids");
        using var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = method == "PATCH" ? new StringContent("{\"title\":\"t\"}", Encoding.UTF8, "application/json") : null,
        };

        using var response = await client.Http.SendAsync(request);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"expected 400, got {(int)response.StatusCode}: {text}");
        Assert.Equal(code, JsonDocument.Parse(text).RootElement.GetProperty("code").GetString());
    }
}
