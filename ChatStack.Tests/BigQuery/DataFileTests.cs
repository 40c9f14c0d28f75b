using ChatStack.BigQueryEmulator;
using ChatStack.BigQueryEmulator.Storage;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ChatStack.Tests.BigQuery;

/// <summary>The emulator's DuckDB file: one process at a time, and a clear stop for the second.</summary>
public sealed class DataFileTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("chatstack-bq-data-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task A_second_emulator_on_a_data_file_in_use_stops_with_one_clear_line_and_one_in_memory_starts()
    {
        await using var first = EmulatorApp.Create(["--urls", "http://127.0.0.1:0", $"--BigQueryEmulator:DataPath={_folder.FullName}"],
            builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        first.Services.GetRequiredService<DuckDbDatabase>(); // holds the file, as a running stack's emulator does

        using (var second = StartEmulator($"--BigQueryEmulator:DataPath={_folder.FullName}"))
        {
            Assert.Equal(1, await second.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            var error = second.StandardError.Trim();
            Assert.StartsWith($"ChatStack BigQuery emulator cannot start: The BigQuery emulator's data file {Path.Combine(_folder.FullName, "bigquery.duckdb")} is in use by another process.", error);
            Assert.Contains("GoogleCloud:Emulators:bigquery:InMemory=true", error);
            Assert.DoesNotContain("\n", error);
            Assert.DoesNotContain("   at ", second.StandardOutput + second.StandardError);
        }

        // The way out it names: an emulator in memory starts beside the one holding the file.
        using var inMemory = StartEmulator("--BigQueryEmulator:InMemory=true", $"--BigQueryEmulator:DataPath={_folder.FullName}");
        const string listening = "Now listening on: ";
        await inMemory.WaitForOutputAsync(listening, TimeSpan.FromSeconds(60));
        var line = inMemory.StandardOutput.Split('\n').First(l => l.Contains(listening, StringComparison.Ordinal));
        using var http = new HttpClient();
        using var health = await http.GetAsync($"{line[(line.IndexOf(listening, StringComparison.Ordinal) + listening.Length)..].Trim()}/health");
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
    }

    private static DotnetProcess StartEmulator(params string[] arguments) =>
        new(Path.Combine(AppContext.BaseDirectory, "ChatStack.BigQueryEmulator.dll"), ["--urls", "http://127.0.0.1:0", .. arguments], []);
}
