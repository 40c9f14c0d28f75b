using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ChatStack.Tests.Support;

/// <summary>Talks to a chat API as a frontend would: a development token, then JSON in and SSE out.</summary>
public sealed class ChatApiClient(HttpClient http)
{
    public HttpClient Http => http;

    /// <summary>The <c>X-Session-Id</c> of the last chat this client read.</summary>
    public string? LastSessionId { get; private set; }

    /// <summary>
    /// A plain client for <paramref name="baseAddress"/>, like a browser's: no retries, and a response disposed
    /// early closes the connection at once (HttpClient would otherwise drain it to reuse the connection, and the
    /// server would see no disconnect).
    /// </summary>
    public static HttpClient CreateHttpClient(Uri baseAddress) =>
        new(new SocketsHttpHandler { MaxResponseDrainSize = 0, ResponseDrainTimeout = TimeSpan.Zero }) { BaseAddress = baseAddress };

    public static Task<ChatApiClient> SignInAsync(Uri baseAddress, string userId) => SignInAsync(CreateHttpClient(baseAddress), userId);

    /// <summary>A client authenticated as <paramref name="userId"/> through the development token endpoint.</summary>
    public static async Task<ChatApiClient> SignInAsync(HttpClient http, string userId)
    {
        http.Timeout = TimeSpan.FromMinutes(2);
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user_id = userId });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return new ChatApiClient(http);
    }

    /// <summary>Posts a chat request; the response is returned as soon as its headers arrive.</summary>
    public Task<HttpResponseMessage> PostChatAsync(object body, CancellationToken cancellationToken = default) =>
        PostRawAsync(JsonSerializer.Serialize(body), cancellationToken);

    public Task<HttpResponseMessage> PostRawAsync(string json, CancellationToken cancellationToken = default, string contentType = "application/json")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/chat") { Content = new StringContent(json, Encoding.UTF8, contentType) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        return http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    /// <summary>Posts and reads the whole stream.</summary>
    public async Task<List<SseMessage>> ChatAsync(object body, CancellationToken cancellationToken = default)
    {
        using var response = await PostChatAsync(body, cancellationToken);
        LastSessionId = response.Headers.TryGetValues("X-Session-Id", out var ids) ? ids.Single() : null;
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        return await Sse.ReadAllAsync(response, cancellationToken);
    }

    /// <summary>A session of <paramref name="turns"/> short exchanges (a user and an assistant message each), in order; its id.</summary>
    public async Task<string> ChatTurnsAsync(int turns)
    {
        string? session = null;
        for (var turn = 1; turn <= turns; turn++)
        {
            var events = await ChatAsync(new { session_id = session, message = $"Say hello, number {turn}." });
            var last = events.Last(e => !e.IsComment);
            Assert.True(last.Event == "done", $"Turn {turn} ended {last.Event}: {last.Data}");
            session ??= LastSessionId;
        }

        return session!;
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement;
    }
}
