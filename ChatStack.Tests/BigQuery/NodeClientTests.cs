using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;

namespace ChatStack.Tests.BigQuery;

/// <summary>Google's own Node.js BigQuery client (@google-cloud/bigquery 9.3.0) against the emulator.</summary>
[Collection(EmulatorCollection.Name)]
public sealed class NodeClientTests(EmulatorFixture emulator)
{
    private static string NodeFolder([CallerFilePath] string source = "") => Path.Combine(Path.GetDirectoryName(source)!, "node");

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string file, string arguments, string folder, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["npm_config_update_notifier"] = "false";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {arguments} did not finish in {timeout}.");
        }
        return (process.ExitCode, await output, await error);
    }

    [Fact]
    public async Task GoogleNodeClient_CreatesInsertsAndQueries()
    {
        var folder = NodeFolder();
        if (!Directory.Exists(Path.Combine(folder, "node_modules", "@google-cloud", "bigquery")))
        {
            var install = await RunAsync("npm", "ci --no-audit --no-fund --loglevel=error", folder, TimeSpan.FromMinutes(3));
            Assert.True(install.ExitCode == 0, $"npm ci failed: {install.Error}");
        }

        var run = await RunAsync("node", $"script.mjs {emulator.BaseAddress.ToString().TrimEnd('/')}", folder, TimeSpan.FromMinutes(2));
        Assert.True(run.ExitCode == 0, $"node script failed ({run.ExitCode}): {run.Error}");

        var result = JsonNode.Parse(run.Output.Trim().Split('\n')[^1])!;
        Assert.Equal("TABLE", (string?)result["table"]!["type"]);
        Assert.Equal("ts", (string?)result["table"]!["partitionField"]);

        var rows = result["rows"]!.AsArray();
        Assert.Equal(2, rows.Count);
        Assert.Equal(("a", 1, "2024-01-01T00:00:00.250Z", "1.5", 2, "m1"),
            ((string?)rows[0]!["id"], (int)rows[0]!["n"]!, (string?)rows[0]!["ts"], (string?)rows[0]!["amount"], (int)rows[0]!["tagCount"]!, (string?)rows[0]!["model"]));

        var partial = result["partialFailure"]!;
        Assert.Equal("PartialFailureError", (string?)partial["name"]);
        Assert.Equal("stopped", (string?)partial["reasons"]![0]!["reasons"]![0]);
        Assert.Equal("invalid", (string?)partial["reasons"]![1]!["reasons"]![0]);

        Assert.Equal((409, "duplicate"), ((int)result["duplicate"]!["code"]!, (string?)result["duplicate"]!["reason"]));
        Assert.Equal((7, 14, "DONE"), ((int)result["jobRowCount"]!, (int)result["jobLastTwice"]!, (string?)result["jobState"]));
        Assert.Equal((400, "invalidQuery"), ((int)result["invalidQuery"]!["code"]!, (string?)result["invalidQuery"]!["reason"]));
    }
}
