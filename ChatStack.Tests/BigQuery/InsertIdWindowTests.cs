using System.Text.Json.Nodes;
using ChatStack.BigQueryEmulator;
using ChatStack.GoogleCloud.BigQuery;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.BigQuery;

/// <summary>insertId de-duplication is best effort over a window, as in BigQuery: a repeat after it is a new row.</summary>
public sealed class InsertIdWindowTests
{
    [Fact]
    public async Task RequestsWithTheSameInsertIds_SentTogether_WriteEachRowOnce()
    {
        // A client that timed out retries while its first request still waits behind others for the database.
        var (app, client) = await StartWithTableAsync([]);
        try
        {
            InsertAllRequest Rows() => new() { Rows = [.. Enumerable.Range(0, 200).Select(i => new InsertAllRow { InsertId = $"id-{i}", Json = new JsonObject { ["a"] = $"{i}" } })] };

            // A long query holds the database while the requests arrive, so each of them is read and checked before
            // any is written.
            var query = client.QueryAsync(new QueryRequest { Query = "SELECT SUM(x) AS s FROM UNNEST(GENERATE_ARRAY(1, 5000000)) AS x" });
            await Task.Delay(100);
            await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.InsertAllAsync("d", "t", Rows())));
            await query;

            Assert.Equal("200", (await client.GetTableAsync("d", "t")).NumRows);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task RepeatedInsertId_IsDroppedInsideTheWindowAndWrittenAfterIt()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var (app, client) = await StartWithTableAsync(["--BigQueryEmulator:InsertIdWindow=00:01:00"], clock);
        try
        {
            InsertAllRequest Row() => new() { Rows = [new() { InsertId = "same", Json = new JsonObject { ["a"] = "x" } }] };

            await client.InsertAllAsync("d", "t", Row());
            clock.Advance(TimeSpan.FromSeconds(59));
            await client.InsertAllAsync("d", "t", Row());
            Assert.Equal("1", (await client.GetTableAsync("d", "t")).NumRows);

            clock.Advance(TimeSpan.FromSeconds(2));
            await client.InsertAllAsync("d", "t", Row());
            Assert.Equal("2", (await client.GetTableAsync("d", "t")).NumRows);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>An emulator of its own, in memory, with table <c>d.t</c> (one STRING column <c>a</c>), and a client for it.</summary>
    private static async Task<(Microsoft.AspNetCore.Builder.WebApplication App, BigQueryClient Client)> StartWithTableAsync(string[] settings, TimeProvider? clock = null)
    {
        var app = EmulatorApp.Create(["--urls", "http://127.0.0.1:0", "--BigQueryEmulator:InMemory=true", .. settings], builder =>
        {
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            if (clock is not null)
            {
                builder.Services.AddSingleton(clock);
            }
        });
        await app.StartAsync();
        var address = EmulatorFixture.AddressOf(app);
        var options = new BigQueryOptions { ProjectId = "insert-ids", EmulatorHost = $"{address.Host}:{address.Port}" };
        var client = new BigQueryClient(new HttpClient { BaseAddress = options.BaseAddress }, Microsoft.Extensions.Options.Options.Create(options));
        await client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = "d" } });
        await client.CreateTableAsync("d", new Table { TableReference = new() { TableId = "t" }, Schema = new TableSchema { Fields = [new() { Name = "a", Type = "STRING" }] } });
        return (app, client);
    }
}
