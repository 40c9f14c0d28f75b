using System.Net;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Identity;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ChatStack.Tests.Chat;

/// <summary>The user id is the token's subject: a token that names none is a bad token, not a server error.</summary>
public class TokenTests(InMemoryChatApi api) : IClassFixture<InMemoryChatApi>
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task A_signed_token_without_a_subject_is_refused_as_an_invalid_token(string? subject)
    {
        var options = api.Host.Services.GetRequiredService<ChatIdentityOptions>();
        var now = DateTime.UtcNow;
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = options.Issuer,
            Audience = options.Audience,
            Claims = subject is null ? new Dictionary<string, object> { ["name"] = "nobody" } : new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = subject },
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddMinutes(5),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(options.SigningKey!)), SecurityAlgorithms.HmacSha256),
        });
        using var http = api.Host.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", token);

        foreach (var (method, path) in new[] { (HttpMethod.Get, "/api/sessions"), (HttpMethod.Get, "/api/sessions/s1"), (HttpMethod.Post, "/api/chat/streams/x/cancel") })
        {
            using var response = await http.SendAsync(new HttpRequestMessage(method, path));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path}: expected 401, got {(int)response.StatusCode}: {text}");
            var problem = JsonDocument.Parse(text).RootElement;
            Assert.Equal("invalid-token", problem.GetProperty("code").GetString());
            Assert.Contains("The bearer token was refused (The token has no subject claim)", problem.GetProperty("detail").GetString());
        }
    }
}
