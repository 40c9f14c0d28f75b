using System.Diagnostics;
using System.Text;

namespace ChatStack.Bench.Tokenizers;

/// <summary>The benchmark corpus, written by scripts/tiktoken-reference/write-corpus.mjs so the npm peers read the same file.</summary>
internal static class Corpus
{
    internal static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "scripts", "tiktoken-reference", "write-corpus.mjs")))
                {
                    return dir.FullName;
                }
            }
            throw new DirectoryNotFoundException("Repository root (scripts/tiktoken-reference) not found above " + AppContext.BaseDirectory);
        }
    }

    internal static string PeersDirectory => Path.Combine(RepoRoot, "bench", "ChatStack.Bench.Tokenizers", "node");

    /// <summary>Path of the corpus file, generated on first use (deterministic, ~2.4 MB UTF-8).</summary>
    internal static string FilePath
    {
        get
        {
            string path = Path.Combine(Path.GetTempPath(), "chatstack-token-corpus-v1.txt");
            if (!File.Exists(path))
            {
                Run("node", $"write-corpus.mjs \"{path}\" 2000000", Path.Combine(RepoRoot, "scripts", "tiktoken-reference"));
            }
            return path;
        }
    }

    private static string? s_text;

    internal static string Text => s_text ??= File.ReadAllText(FilePath, Encoding.UTF8);

    internal static int Utf8Bytes => Encoding.UTF8.GetByteCount(Text);

    internal static string Run(string file, string arguments, string workingDirectory)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} exited with {process.ExitCode}: {stderr.Result}");
        }
        return stdout;
    }
}
