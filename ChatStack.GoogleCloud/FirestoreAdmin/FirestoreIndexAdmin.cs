using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ChatStack.GoogleCloud.FirestoreAdmin;

/// <summary>One field of a composite index: a path and <c>ASCENDING</c> or <c>DESCENDING</c>.</summary>
public sealed record FirestoreIndexField(
    [property: JsonPropertyName("fieldPath")] string FieldPath,
    [property: JsonPropertyName("order")] string? Order);

/// <summary>A composite index as the Firestore Admin API describes it (<c>name</c> and <c>state</c> are the server's).</summary>
public sealed record FirestoreIndex(
    [property: JsonPropertyName("queryScope")] string QueryScope,
    [property: JsonPropertyName("fields")] IReadOnlyList<FirestoreIndexField> Fields)
{
    [JsonPropertyName("name"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Name { get; init; }

    /// <summary><c>CREATING</c>, <c>READY</c> or <c>NEEDS_REPAIR</c>.</summary>
    [JsonPropertyName("state"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? State { get; init; }
}

/// <summary>A collection group of one Firestore database (<c>(default)</c> unless named).</summary>
public sealed record FirestoreCollectionGroup(string ProjectId, string Database, string Id)
{
    // Not percent-encoded: project and database ids are letters, digits and hyphens, or "(default)", which the
    // API's own examples write as is (escaping would send %28default%29).
    internal string IndexesPath => $"v1/projects/{ProjectId}/databases/{Database}/collectionGroups/{Id}/indexes";

    /// <summary>A field's settings; the field paths used here are plain names, which need no quoting.</summary>
    internal string FieldPath(string field) => $"v1/projects/{ProjectId}/databases/{Database}/collectionGroups/{Id}/fields/{field}";
}

/// <summary>
/// Composite indexes and TTL policies of Firestore databases. The emulator has no admin API (and needs no indexes,
/// nor deletes expired documents).
/// </summary>
public interface IFirestoreIndexAdmin
{
    Task<IReadOnlyList<FirestoreIndex>> ListIndexesAsync(FirestoreCollectionGroup group, CancellationToken cancellationToken);

    /// <summary>Starts building the index; Firestore answers with a long-running operation, not waited for here.</summary>
    Task CreateIndexAsync(FirestoreCollectionGroup group, FirestoreIndex index, CancellationToken cancellationToken);

    /// <summary>The state of the TTL policy on <paramref name="field"/> (<c>CREATING</c>, <c>ACTIVE</c>, <c>NEEDS_REPAIR</c>), or null when it has none.</summary>
    Task<string?> GetTtlStateAsync(FirestoreCollectionGroup group, string field, CancellationToken cancellationToken);

    /// <summary>Makes <paramref name="field"/>, a timestamp, the group's TTL: Firestore deletes a document some time after it passes.</summary>
    Task EnableTtlAsync(FirestoreCollectionGroup group, string field, CancellationToken cancellationToken);
}

/// <summary>A Firestore Admin API error: HTTP code, canonical status and message.</summary>
public sealed class FirestoreAdminException(int code, string? status, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string? Status { get; } = status;
}

/// <summary>The Firestore Admin REST API (v1) for composite indexes, with application default credentials.</summary>
public sealed class FirestoreIndexAdmin(HttpClient http) : IFirestoreIndexAdmin
{
    /// <summary>Where the Admin API is; <c>GoogleCloud:FirestoreAdminEndpoint</c> points it elsewhere (tests), without credentials.</summary>
    public static readonly Uri DefaultEndpoint = new("https://firestore.googleapis.com/");

    public async Task<IReadOnlyList<FirestoreIndex>> ListIndexesAsync(FirestoreCollectionGroup group, CancellationToken cancellationToken)
    {
        var indexes = new List<FirestoreIndex>();
        string? pageToken = null;
        do
        {
            var path = group.IndexesPath + (pageToken is null ? "" : $"?pageToken={Uri.EscapeDataString(pageToken)}");
            using var response = await SendAsync(() => http.GetAsync(path, cancellationToken));
            await EnsureSuccessAsync(response, cancellationToken);
            var page = await response.Content.ReadFromJsonAsync<IndexPage>(cancellationToken);
            indexes.AddRange(page?.Indexes ?? []);
            pageToken = string.IsNullOrEmpty(page?.NextPageToken) ? null : page.NextPageToken;
        }
        while (pageToken is not null);

        return indexes;
    }

    public async Task CreateIndexAsync(FirestoreCollectionGroup group, FirestoreIndex index, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => http.PostAsJsonAsync(group.IndexesPath, index with { Name = null, State = null }, cancellationToken));
        await EnsureSuccessAsync(response, cancellationToken);
    }

    public async Task<string?> GetTtlStateAsync(FirestoreCollectionGroup group, string field, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => http.GetAsync(group.FieldPath(field), cancellationToken));
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null; // never configured
        }

        await EnsureSuccessAsync(response, cancellationToken);
        var settings = await response.Content.ReadFromJsonAsync<FieldSettings>(cancellationToken);
        return settings?.TtlConfig is { } ttl ? ttl.State ?? "CREATING" : null;
    }

    public async Task EnableTtlAsync(FirestoreCollectionGroup group, string field, CancellationToken cancellationToken)
    {
        // Only the TTL setting: the mask leaves the field's index settings as they are.
        using var response = await SendAsync(() => http.PatchAsJsonAsync($"{group.FieldPath(field)}?updateMask=ttlConfig",
            new FieldSettings(new TtlConfig(null)), cancellationToken));
        await EnsureSuccessAsync(response, cancellationToken);
    }

    // A failure to reach the API is reported as this API's, not as a bare HttpRequestException another caller might claim.
    private async Task<HttpResponseMessage> SendAsync(Func<Task<HttpResponseMessage>> send)
    {
        try
        {
            return await send();
        }
        catch (HttpRequestException e)
        {
            throw new FirestoreAdminException(0, null, $"Firestore Admin API at {http.BaseAddress} did not answer: {e.Message}");
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        string? status = null;
        var message = body;
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("error", out var error))
            {
                status = error.TryGetProperty("status", out var s) ? s.GetString() : null;
                message = error.TryGetProperty("message", out var m) ? m.GetString() ?? body : body;
            }
        }
        catch (JsonException)
        {
            // Not Google's error shape (a proxy's page): the body as it came.
        }

        throw new FirestoreAdminException((int)response.StatusCode, status,
            $"Firestore Admin API answered {(int)response.StatusCode}{(status is null ? "" : " " + status)}: {message}");
    }

    private sealed record FieldSettings([property: JsonPropertyName("ttlConfig")] TtlConfig? TtlConfig);

    private sealed record TtlConfig([property: JsonPropertyName("state"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? State);

    private sealed record IndexPage(
        [property: JsonPropertyName("indexes")] IReadOnlyList<FirestoreIndex>? Indexes,
        [property: JsonPropertyName("nextPageToken")] string? NextPageToken);
}

public static class FirestoreIndexAdminExtensions
{
    /// <summary>Registers <see cref="IFirestoreIndexAdmin"/>: the real Admin API with application default credentials.</summary>
    public static IHostApplicationBuilder AddFirestoreIndexAdmin(this IHostApplicationBuilder builder)
    {
        var endpoint = builder.Configuration["GoogleCloud:FirestoreAdminEndpoint"] is { Length: > 0 } configured ? new Uri(configured.TrimEnd('/') + "/") : null;
        builder.Services.AddHttpClient<IFirestoreIndexAdmin, FirestoreIndexAdmin>(http => http.BaseAddress = endpoint ?? FirestoreIndexAdmin.DefaultEndpoint)
            .AddHttpMessageHandler(() => new GoogleAuthHandler(useCredentials: endpoint is null));
        return builder;
    }
}
