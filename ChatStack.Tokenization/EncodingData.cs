using System.IO.Compression;
using System.Reflection;
using System.Text;

namespace ChatStack.Tokenization;

/// <summary>Reads the tiktoken rank files shipped in the Microsoft.ML.Tokenizers.Data.* packages.</summary>
internal static class EncodingData
{
    /// <summary>The deflated <c>.tiktoken</c> file ("base64-token rank" per line) of an encoding.</summary>
    internal static Stream OpenTiktokenFile(string encodingName)
    {
        // The data types are internal to their packages, so the assemblies are loaded by name.
        Assembly assembly = Assembly.Load(encodingName switch
        {
            TokenizerEncodings.O200kBase => "Microsoft.ML.Tokenizers.Data.O200kBase",
            TokenizerEncodings.Cl100kBase => "Microsoft.ML.Tokenizers.Data.Cl100kBase",
            _ => throw new ArgumentException($"Unsupported encoding '{encodingName}'.", nameof(encodingName)),
        });
        Stream raw = assembly.GetManifestResourceStream($"{encodingName}.tiktoken.deflate")
            ?? throw new InvalidOperationException($"Encoding data for '{encodingName}' not found in {assembly.GetName().Name}.");
        return new DeflateStream(raw, CompressionMode.Decompress);
    }

    internal static Dictionary<ReadOnlyMemory<byte>, int> LoadRanks(string encodingName)
    {
        var ranks = new Dictionary<ReadOnlyMemory<byte>, int>(210_000);
        using var reader = new StreamReader(OpenTiktokenFile(encodingName), Encoding.ASCII);
        int rank = 0;
        while (reader.ReadLine() is { } line)
        {
            // The packaged files start with "Capacity: N", then list tokens in rank order, optionally "token rank".
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }
            int space = line.IndexOf(' ');
            if (space > 0)
            {
                rank = int.Parse(line.AsSpan(space + 1), System.Globalization.CultureInfo.InvariantCulture);
                line = line[..space];
            }
            ranks[Convert.FromBase64String(line)] = rank++;
        }
        return ranks;
    }
}
