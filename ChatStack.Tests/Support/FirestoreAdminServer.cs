using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ChatStack.Tests.Support;

/// <summary>
/// A stand-in for the Firestore Admin REST API's composite indexes and field settings (v1), which no emulator serves:
/// list indexes (in pages of one, so paging is exercised) and create one, get a field and patch its TTL setting, as the
/// API documents them. A created index is listed in state CREATING with <c>__name__</c> appended in the last field's
/// direction, as Firestore does; a field never configured answers with its inherited index settings and no TTL.
/// </summary>
public sealed class FirestoreAdminServer : IAsyncDisposable
{
    private LocalServer _server = null!;

    public Uri BaseAddress => _server.Address;

    /// <summary>"METHOD path" of every request, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Indexes by <c>collectionGroups/…/indexes</c> path.</summary>
    public ConcurrentDictionary<string, List<JsonObject>> Indexes { get; } = new();

    /// <summary>TTL states by <c>collectionGroups/…/fields/…</c> path.</summary>
    public ConcurrentDictionary<string, string> Ttl { get; } = new();

    /// <summary>When set, every request is answered with this status and Google's error body.</summary>
    public (int Code, string Status, string Message)? Failure { get; set; }

    public static async Task<FirestoreAdminServer> StartAsync()
    {
        var server = new FirestoreAdminServer();
        server._server = await LocalServer.StartAsync(app =>
        {
            app.Map("/v1/projects/{project}/databases/{database}/collectionGroups/{group}/fields/{field}", async (HttpContext context) =>
            {
                var path = context.Request.Path.Value!;
                server.Requests.Enqueue($"{context.Request.Method} {path}{context.Request.QueryString}");
                if (server.Failure is { } failure)
                {
                    return Results.Json(new { error = new { code = failure.Code, message = failure.Message, status = failure.Status } }, statusCode: failure.Code);
                }

                var name = path.TrimStart('/')[3..];
                if (context.Request.Method == HttpMethods.Patch)
                {
                    var body = (JsonObject)(await JsonNode.ParseAsync(context.Request.Body))!;
                    if (context.Request.Query["updateMask"] != "ttlConfig" || body["ttlConfig"] is not JsonObject)
                    {
                        return Results.Json(new { error = new { code = 400, message = "only ttlConfig is served here", status = "INVALID_ARGUMENT" } }, statusCode: 400);
                    }

                    server.Ttl[path] = "CREATING";
                    return Results.Json(new { name = $"{name}/operations/ttl", metadata = new { } });
                }

                return server.Ttl.TryGetValue(path, out var state)
                    ? Results.Json(new { name, indexConfig = new { usesAncestorConfig = true }, ttlConfig = new { state } })
                    : Results.Json(new { name, indexConfig = new { usesAncestorConfig = true } });
            });
            app.Map("/v1/projects/{project}/databases/{database}/collectionGroups/{group}/indexes", async (HttpContext context) =>
            {
                var path = context.Request.Path.Value!;
                server.Requests.Enqueue($"{context.Request.Method} {path}");
                if (server.Failure is { } failure)
                {
                    return Results.Json(new { error = new { code = failure.Code, message = failure.Message, status = failure.Status } }, statusCode: failure.Code);
                }

                var indexes = server.Indexes.GetOrAdd(path, _ => []);
                if (context.Request.Method == HttpMethods.Post)
                {
                    var index = (JsonObject)(await JsonNode.ParseAsync(context.Request.Body))!;
                    var fields = index["fields"]!.AsArray();
                    var stored = new JsonObject
                    {
                        ["name"] = $"{path.TrimStart('/')[3..]}/CICAgO{indexes.Count}",
                        ["queryScope"] = index["queryScope"]!.DeepClone(),
                        ["fields"] = new JsonArray([.. fields.Select(f => f!.DeepClone()),
                            new JsonObject { ["fieldPath"] = "__name__", ["order"] = fields[^1]!["order"]!.DeepClone() }]),
                        ["state"] = "CREATING",
                    };
                    lock (indexes)
                    {
                        indexes.Add(stored);
                    }

                    return Results.Json(new { name = $"{path.TrimStart('/')[3..]}/operations/op{indexes.Count}", metadata = new { } });
                }

                // A page of one index; the token is the next one's position.
                var position = int.TryParse(context.Request.Query["pageToken"], out var token) ? token : 0;
                lock (indexes)
                {
                    var page = indexes.Skip(position).Take(1).ToArray();
                    return Results.Json(new JsonObject
                    {
                        ["indexes"] = new JsonArray([.. page.Select(i => i.DeepClone())]),
                        ["nextPageToken"] = position + 1 < indexes.Count ? $"{position + 1}" : null,
                    });
                }
            });
        });
        return server;
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
