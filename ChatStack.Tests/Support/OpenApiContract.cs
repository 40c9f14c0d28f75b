using System.Text.Json;
using System.Text.RegularExpressions;

namespace ChatStack.Tests.Support;

/// <summary>A running chat API's OpenAPI document, held against what its endpoints really answer.</summary>
public sealed class OpenApiContract(JsonElement document)
{
    public static async Task<OpenApiContract> LoadAsync(HttpClient http) =>
        new(JsonDocument.Parse(await http.GetStringAsync("/openapi/v1.json")).RootElement);

    /// <summary>The operation that answered <paramref name="response"/> declares its status code.</summary>
    public void AssertDeclares(HttpResponseMessage response)
    {
        var request = response.RequestMessage!;
        var path = request.RequestUri!.AbsolutePath;
        var matches = document.GetProperty("paths").EnumerateObject()
            .Where(p => Regex.IsMatch(path, "^" + Regex.Replace(Regex.Escape(p.Name), @"\\\{[^}]+}", "[^/]+") + "$"))
            .ToList();
        var template = Assert.Single(matches);
        var status = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(template.Value.TryGetProperty(request.Method.Method.ToLowerInvariant(), out var operation),
            $"the OpenAPI document has no {request.Method} {template.Name}");
        Assert.True(operation.GetProperty("responses").TryGetProperty(status, out _),
            $"{request.Method} {template.Name} answered {status}, which its OpenAPI operation does not declare");
    }
}
