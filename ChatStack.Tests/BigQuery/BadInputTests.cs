using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace ChatStack.Tests.BigQuery;

/// <summary>Malformed or nonsensical requests get a BigQuery-shaped 4xx, never a 500, and write nothing.</summary>
[Collection(EmulatorCollection.Name)]
public sealed class BadInputTests(EmulatorFixture emulator)
{
    private const string P = "/bigquery/v2/projects/" + EmulatorFixture.Project;

    [Theory]
    [InlineData("POST", "/datasets", "{}", 400)]
    [InlineData("POST", "/datasets", "[1,2]", 400)]
    [InlineData("POST", "/datasets", "", 400)]
    [InlineData("POST", "/datasets", """{"datasetReference":{"datasetId":"bad id!"}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables", """{"tableReference":{"tableId":"t"},"schema":{"fields":[{"name":"a","type":"NOPE"}]}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables", """{"tableReference":{"tableId":"t"},"schema":{"fields":[{"name":"a","type":"RECORD"}]}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables", """{"tableReference":{"tableId":"t"},"schema":{"fields":[{"name":"a b","type":"STRING"}]}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables", """{"tableReference":{"tableId":"t"},"schema":{"fields":[{"name":"a","type":"STRING"}]},"timePartitioning":{"field":"a"}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables", """{"tableReference":{"tableId":"v"},"view":{"query":"SELECT FROM WHERE"}}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables/base/insertAll", """{"rows":"nope"}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables/base/insertAll", """{"rows":[1]}""", 400)]
    [InlineData("POST", "/datasets/{ds}/tables/base/insertAll", """{"rows":[]}""", 400)]
    [InlineData("PATCH", "/datasets/{ds}/tables/base", """{"schema":{"fields":[]}}""", 400)]
    [InlineData("PATCH", "/datasets/{ds}/tables/missing", """{"description":"x"}""", 404)]
    [InlineData("GET", "/datasets/{ds}/tables/missing", "", 404)]
    [InlineData("POST", "/queries", """{"query":"SELECT TIMESTAMP_DIFF(1)","useLegacySql":false}""", 400)]
    [InlineData("POST", "/queries", """{"query":"CREATE TABLE","useLegacySql":false}""", 400)]
    [InlineData("POST", "/queries", """{"query":"SELECT (1","useLegacySql":false}""", 400)]
    [InlineData("POST", "/queries", """{"query":"SELECT @missing","useLegacySql":false}""", 400)]
    [InlineData("POST", "/queries", """{"query":"","useLegacySql":false}""", 400)]
    [InlineData("POST", "/queries", """{"query":"SELECT 1","useLegacySql":false,"maxResults":"many"}""", 400)]
    [InlineData("GET", "/queries/no_such_job", "", 404)]
    [InlineData("GET", "/jobs/no_such_job", "", 404)]
    [InlineData("POST", "/jobs", """{"configuration":{"load":{}}}""", 400)]
    public async Task BadRequest_IsAnsweredInBigQueryShape(string method, string path, string body, int status)
    {
        using var http = emulator.CreateRawClient();
        var dataset = await NewDatasetWithBaseTableAsync(http);

        var response = await Send(http, method, P + path.Replace("{ds}", dataset, StringComparison.Ordinal), body);

        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(status, error["code"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(error["errors"]![0]!["reason"]!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        var rows = await Send(http, "POST", $"{P}/queries", $$"""{"query":"SELECT COUNT(*) FROM {{dataset}}.base","useLegacySql":false}""");
        Assert.Equal("0", JsonNode.Parse(await rows.Content.ReadAsStringAsync())!["rows"]![0]!["f"]![0]!["v"]!.GetValue<string>());
    }

    /// <summary>
    /// Query mistakes answer in BigQuery's words, so code that branches on a 404 or shows the message to a user
    /// behaves as against real BigQuery; a view over a missing table is refused the same way.
    /// </summary>
    [Theory]
    [InlineData("SELECT a FROM {ds}.missing", 404, "notFound", "Not found: Table chatstack-test:{ds}.missing was not found in location US")]
    [InlineData("INSERT INTO {ds}.missing (a) VALUES ('x')", 404, "notFound", "Not found: Table chatstack-test:{ds}.missing was not found in location US")]
    [InlineData("DROP TABLE {ds}.missing", 404, "notFound", "Not found: Table chatstack-test:{ds}.missing was not found in location US")]
    [InlineData("VIEW SELECT a FROM {ds}.missing", 404, "notFound", "Not found: Table chatstack-test:{ds}.missing was not found in location US")]
    [InlineData("SELECT nope FROM {ds}.base", 400, "invalidQuery", "Unrecognized name: nope")]
    [InlineData("SELECT no_such_function(a) FROM {ds}.base", 400, "invalidQuery", "Function not found: no_such_function")]
    [InlineData("SELECT a, COUNT(*) FROM {ds}.base", 400, "invalidQuery", "SELECT list expression references column a which is neither grouped nor aggregated")]
    [InlineData("SELEC 1", 400, "invalidQuery", "Syntax error: Unexpected \"1\"")]
    [InlineData("SELECT 1 +", 400, "invalidQuery", "Syntax error: Unexpected end of script")]
    [InlineData("SELECT CAST('x' AS INT64)", 400, "invalidQuery", "Bad int64 value: x")]
    [InlineData("SELECT CAST('x' AS FLOAT64)", 400, "invalidQuery", "Bad double value: x")]
    public async Task QueryMistakes_AreWordedAsBigQueryWordsThem(string query, int status, string reason, string message)
    {
        using var http = emulator.CreateRawClient();
        var dataset = await NewDatasetWithBaseTableAsync(http);
        query = query.Replace("{ds}", dataset, StringComparison.Ordinal);
        message = message.Replace("{ds}", dataset, StringComparison.Ordinal);

        var response = query.StartsWith("VIEW ", StringComparison.Ordinal)
            ? await Send(http, "POST", $"{P}/datasets/{dataset}/tables",
                new JsonObject { ["tableReference"] = new JsonObject { ["tableId"] = "v" }, ["view"] = new JsonObject { ["query"] = query[5..] } }.ToJsonString())
            : await Send(http, "POST", $"{P}/queries", new JsonObject { ["query"] = query, ["useLegacySql"] = false }.ToJsonString());

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, body);
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal(message, error["message"]!.GetValue<string>());
        Assert.Equal(reason, error["errors"]![0]!["reason"]!.GetValue<string>());
    }

    /// <summary>A dataset of its own with an empty table <c>base (a STRING)</c>.</summary>
    private static async Task<string> NewDatasetWithBaseTableAsync(HttpClient http)
    {
        var dataset = EmulatorFixture.NewDatasetId();
        await Send(http, "POST", $"{P}/datasets", new JsonObject { ["datasetReference"] = new JsonObject { ["datasetId"] = dataset } }.ToJsonString());
        await Send(http, "POST", $"{P}/datasets/{dataset}/tables", """{"tableReference":{"tableId":"base"},"schema":{"fields":[{"name":"a","type":"STRING"}]}}""");
        return dataset;
    }

    private static Task<HttpResponseMessage> Send(HttpClient http, string method, string path, string body)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method != "GET")
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        return http.SendAsync(request);
    }
}
