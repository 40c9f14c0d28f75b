using System.Diagnostics;
using ChatStack.BigQueryEmulator;
using ChatStack.BigQueryEmulator.Storage;
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

        var (exitCode, stdout, stderr) = await RunEmulatorAsync($"--BigQueryEmulator:DataPath={_folder.FullName}");

        Assert.Equal(1, exitCode);
        var error = stderr.Trim();
        Assert.StartsWith($"ChatStack BigQuery emulator cannot start: The BigQuery emulator's data file {Path.Combine(_folder.FullName, "bigquery.duckdb")} is in use by another process.", error);
        Assert.Contains("GoogleCloud:Emulators:bigquery:InMemory=true", error);
        Assert.DoesNotContain("\n", error);
        Assert.DoesNotContain("   at ", stdout + stderr);

        // The way out it names: an emulator in memory starts beside the one holding the file.
        var (inMemoryExit, _, inMemoryError) = await RunEmulatorAsync("--BigQueryEmulator:InMemory=true", $"--BigQueryEmulator:DataPath={_folder.FullName}");
        Assert.True(inMemoryExit is null, $"The in-memory emulator exited: {inMemoryError}");
    }

    /// <summary>
    /// Runs the built emulator: its exit code and output when it stops by itself, or a null exit code once it has
    /// answered <c>GET /health</c> with 200 (then it is stopped).
    /// </summary>
    private static async Task<(int? ExitCode, string Stdout, string Stderr)> RunEmulatorAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "ChatStack.BigQueryEmulator.dll"), "--urls", "http://127.0.0.1:0", .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = new System.Text.StringBuilder();
        var address = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }

            if (e.Data?.IndexOf("Now listening on: ", StringComparison.Ordinal) is >= 0 and var at)
            {
                address.TrySetResult(e.Data[(at + "Now listening on: ".Length)..].Trim());
            }
        };
        process.BeginOutputReadLine();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var exited = process.WaitForExitAsync(timeout.Token);
        if (await Task.WhenAny(exited, address.Task) == address.Task)
        {
            using var http = new HttpClient();
            using var health = await http.GetAsync($"{address.Task.Result}/health", timeout.Token);
            Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
            process.Kill();
            await process.WaitForExitAsync();
            return (null, Text(stdout), await stderr);
        }

        await exited;
        process.WaitForExit(); // drains the redirected output
        return (process.ExitCode, Text(stdout), await stderr);
    }

    private static string Text(System.Text.StringBuilder builder)
    {
        lock (builder)
        {
            return builder.ToString();
        }
    }
}
