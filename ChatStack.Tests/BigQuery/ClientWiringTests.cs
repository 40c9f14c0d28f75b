using System.Text.Json.Nodes;
using ChatStack.GoogleCloud.BigQuery;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace ChatStack.Tests.BigQuery;

[Collection(EmulatorCollection.Name)]
public sealed class ClientWiringTests(EmulatorFixture emulator)
{
    [Fact]
    public async Task AddBigQueryClient_BindsEmulatorHostAndProjectFromConfiguration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["BIGQUERY_EMULATOR_HOST"] = emulator.HostAndPort,
            ["GOOGLE_CLOUD_PROJECT"] = "wired-project",
        }).Build();
        await using var services = new ServiceCollection().AddBigQueryClient(configuration).BuildServiceProvider();

        var client = services.GetRequiredService<IBigQueryClient>();
        var dataset = await client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = EmulatorFixture.NewDatasetId() } });

        Assert.Equal("wired-project", client.ProjectId);
        Assert.StartsWith("wired-project:", dataset.Id, StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutEmulatorHost_TheClientTargetsBigQueryOverHttps()
    {
        var options = new BigQueryOptions { ProjectId = "p" };
        Assert.Equal(new Uri("https://bigquery.googleapis.com/"), options.BaseAddress);
        Assert.False(options.UsesEmulator);
        Assert.Equal(new Uri("http://localhost:9050/"), new BigQueryOptions { EmulatorHost = "localhost:9050" }.BaseAddress);
    }
}

/// <summary>The file-backed store keeps datasets, table metadata and rows across a restart.</summary>
public sealed class PersistenceTests
{
    [Fact]
    public async Task FileBackedEmulator_KeepsDataAndMetadataAcrossRestart()
    {
        var folder = Path.Combine(Path.GetTempPath(), "bq-persist-" + Guid.NewGuid().ToString("N"));
        try
        {
            var app = await EmulatorFixture.StartAsync($"--BigQueryEmulator:DataPath={folder}");
            var client = Client(app);
            await client.CreateDatasetAsync(new Dataset { DatasetReference = new DatasetReference { DatasetId = "kept" } });
            await client.CreateTableAsync("kept", new Table
            {
                TableReference = new TableReference { TableId = "t" },
                Schema = new TableSchema { Fields = [new() { Name = "id", Type = "STRING" }, new() { Name = "ts", Type = "TIMESTAMP" }] },
                TimePartitioning = new TimePartitioning { Type = "DAY", Field = "ts" },
            });
            await client.InsertAllAsync("kept", "t", new InsertAllRequest { Rows = [new() { Json = new JsonObject { ["id"] = "a", ["ts"] = "2024-01-01T00:00:00Z" } }] });
            await app.StopAsync();
            await app.DisposeAsync();

            Assert.True(File.Exists(Path.Combine(folder, "bigquery.duckdb")));
            app = await EmulatorFixture.StartAsync($"--BigQueryEmulator:DataPath={folder}");
            client = Client(app);
            var table = await client.GetTableAsync("kept", "t");
            Assert.Equal(("1", "ts"), (table.NumRows, table.TimePartitioning!.Field));
            await app.StopAsync();
            await app.DisposeAsync();
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    private static BigQueryClient Client(Microsoft.AspNetCore.Builder.WebApplication app)
    {
        var address = EmulatorFixture.AddressOf(app);
        var options = new BigQueryOptions { ProjectId = "persist", EmulatorHost = $"{address.Host}:{address.Port}" };
        return new BigQueryClient(new HttpClient { BaseAddress = options.BaseAddress }, Microsoft.Extensions.Options.Options.Create(options));
    }
}
