using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace ChatStack.Tests.Tokenization;

/// <summary>
/// Expected ids produced at test time by OpenAI's tiktoken (npm <c>tiktoken</c>, Rust compiled to WASM) through
/// scripts/tiktoken-reference/gen-reference.mjs; nothing is pasted into the tests.
/// </summary>
public sealed class TiktokenReference
{
    private static readonly Lazy<TiktokenReference> s_instance = new(Generate, LazyThreadSafetyMode.ExecutionAndPublication);

    public static TiktokenReference Instance => s_instance.Value;

    /// <summary>Case name → text (lone surrogates preserved).</summary>
    public IReadOnlyDictionary<string, string> Texts { get; }

    /// <summary>Encoding → case name → tiktoken ids.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, int[]>> Ids { get; }

    private TiktokenReference(IReadOnlyDictionary<string, string> texts, IReadOnlyDictionary<string, IReadOnlyDictionary<string, int[]>> ids)
    {
        Texts = texts;
        Ids = ids;
    }

    public static string ScriptDirectory
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "scripts", "tiktoken-reference");
                if (File.Exists(Path.Combine(candidate, "package.json")))
                {
                    return candidate;
                }
            }
            throw new DirectoryNotFoundException("scripts/tiktoken-reference not found above " + AppContext.BaseDirectory);
        }
    }

    private static TiktokenReference Generate()
    {
        string dir = ScriptDirectory;
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "tiktoken")))
        {
            Run("npm", "ci --no-audit --no-fund", dir);
        }
        string output = Path.Combine(Path.GetTempPath(), $"chatstack-tiktoken-{Guid.NewGuid():N}.json");
        try
        {
            Run("node", $"gen-reference.mjs \"{output}\"", dir);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(output));
            var texts = new Dictionary<string, string>();
            foreach (var p in doc.RootElement.GetProperty("texts").EnumerateObject())
            {
                // base64 UTF-16LE, reinterpreted without decoding so lone surrogates stay as they are.
                byte[] bytes = Convert.FromBase64String(p.Value.GetString()!);
                texts[p.Name] = new string(MemoryMarshal.Cast<byte, char>(bytes));
            }
            var ids = new Dictionary<string, IReadOnlyDictionary<string, int[]>>();
            foreach (var enc in doc.RootElement.GetProperty("encodings").EnumerateObject())
            {
                var perCase = new Dictionary<string, int[]>();
                foreach (var c in enc.Value.EnumerateArray())
                {
                    perCase[c.GetProperty("name").GetString()!] = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                }
                ids[enc.Name] = perCase;
            }
            return new TiktokenReference(texts, ids);
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>Encoding → (block start, count, checksum) from gen-unicode-sweep.mjs.</summary>
    public static IReadOnlyDictionary<string, (int Start, int Count, uint Checksum)[]> UnicodeSweep => s_sweep.Value;

    private static readonly Lazy<IReadOnlyDictionary<string, (int Start, int Count, uint Checksum)[]>> s_sweep = new(() =>
    {
        _ = Instance; // runs npm ci if needed
        string output = Path.Combine(Path.GetTempPath(), $"chatstack-sweep-{Guid.NewGuid():N}.json");
        try
        {
            Run("node", $"gen-unicode-sweep.mjs \"{output}\"", ScriptDirectory);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(output));
            return doc.RootElement.GetProperty("encodings").EnumerateObject().ToDictionary(
                e => e.Name,
                e => e.Value.EnumerateArray()
                    .Select(b => (b.GetProperty("start").GetInt32(), b.GetProperty("count").GetInt32(), b.GetProperty("checksum").GetUInt32()))
                    .ToArray());
        }
        finally
        {
            File.Delete(output);
        }
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The text of one sweep block, built exactly as gen-unicode-sweep.mjs builds it.</summary>
    public static string SweepBlockText(int start)
    {
        var builder = new System.Text.StringBuilder();
        for (int cp = start; cp < start + 0x1000; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF)
            {
                continue;
            }
            string c = char.ConvertFromUtf32(cp);
            builder.Append(c).Append('A').Append(c).Append('a').Append(c).Append('1').Append(c).Append(' ').Append(c).Append('\n');
        }
        return builder.ToString();
    }

    private static void Run(string file, string arguments, string workingDirectory)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} exited with {process.ExitCode}: {stderr}{stdout.Result}");
        }
    }
}
