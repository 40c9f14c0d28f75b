namespace ChatStack.Bench.Pipeline;

/// <summary>
/// The methods a .NET process of the benchmark compiles, one line each, through the runtime's own switches
/// (<c>DOTNET_JitStdOutFile</c> with <c>DOTNET_JitDisasmSummary</c>), so a harness can tell whether the JIT was still
/// at work during the turns it measured: after too short a warm-up it took 46% of the chat API's CPU there.
/// </summary>
internal static class JitLog
{
    private static readonly string Folder = Path.Combine(Path.GetTempPath(), $"chatstack-bench-jit-{Environment.ProcessId}");

    /// <summary>The environment that makes the process called <paramref name="name"/> write its log.</summary>
    public static IReadOnlyDictionary<string, string> Variables(string name)
    {
        Directory.CreateDirectory(Folder);
        return new Dictionary<string, string>
        {
            ["DOTNET_JitStdOutFile"] = Path.Combine(Folder, name + ".txt"),
            ["DOTNET_JitDisasmSummary"] = "1",
        };
    }

    /// <summary>
    /// Methods compiled so far by the process called <paramref name="name"/>. A service's <c>dotnet run</c> launcher
    /// inherits the variables and appends its own at start-up; it is idle by the time the turns are measured, so a
    /// difference between two counts then is the service's.
    /// </summary>
    public static int Count(string name)
    {
        var path = Path.Combine(Folder, name + ".txt");
        if (!File.Exists(path))
        {
            return 0;
        }

        // The process still writes to it.
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        var lines = 0;
        while (reader.ReadLine() is not null)
        {
            lines++;
        }

        return lines;
    }

    public static void Delete()
    {
        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }
    }
}
