using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace ChatStack.BigQueryEmulator.Apis;

/// <summary>Reads a JSON body with BigQuery's 10 MB request limit and its error for malformed JSON.</summary>
public static class RequestBody
{
    public const long MaxBytes = 10 * 1024 * 1024;

    // Oversized bodies are still drained (up to this much) so the client reads the error instead of a reset.
    private const long DrainLimit = 64 * 1024 * 1024;

    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo) where T : class
    {
        var bytes = await ReadBytesAsync(context);
        try
        {
            return JsonSerializer.Deserialize(bytes.Span, typeInfo)
                   ?? throw BigQueryError.Invalid("Invalid JSON payload received. Expected an object.");
        }
        catch (JsonException e)
        {
            throw Malformed(e);
        }
    }

    /// <summary>The body as a JsonDocument, for insertAll, which validates rows without building a DOM of nodes.</summary>
    public static async Task<JsonDocument> ReadDocumentAsync(HttpContext context)
    {
        var bytes = await ReadBytesAsync(context);
        try
        {
            var document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw BigQueryError.Invalid("Invalid JSON payload received. Expected an object.");
            }
            return document;
        }
        catch (JsonException e)
        {
            throw Malformed(e);
        }
    }

    private static BigQueryError Malformed(JsonException e)
    {
        var where = e.LineNumber is { } line ? $" at line {line + 1}, position {e.BytePositionInLine + 1}" : "";
        var field = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" Invalid value at '{e.Path.TrimStart('$', '.')}'.";
        return BigQueryError.Invalid($"Invalid JSON payload received. Unexpected token{where}.{field}");
    }

    private static async Task<ReadOnlyMemory<byte>> ReadBytesAsync(HttpContext context)
    {
        if (context.Request.ContentLength > DrainLimit)
        {
            throw BigQueryError.PayloadTooLarge(MaxBytes);
        }
        var buffer = new ArrayBufferWriter<byte>((int)Math.Clamp(context.Request.ContentLength ?? 4096, 1, MaxBytes) + 1);
        var body = context.Request.Body;
        long total = 0;
        while (true)
        {
            var memory = buffer.GetMemory(81920);
            var read = await body.ReadAsync(memory, context.RequestAborted);
            if (read == 0) break;
            total += read;
            if (total > MaxBytes)
            {
                var scratch = new byte[81920];
                while (total <= DrainLimit && (read = await body.ReadAsync(scratch, context.RequestAborted)) > 0) total += read;
                throw BigQueryError.PayloadTooLarge(MaxBytes);
            }
            buffer.Advance(read);
        }
        if (buffer.WrittenCount == 0)
        {
            throw BigQueryError.Invalid("Invalid JSON payload received. Empty request body.");
        }
        return buffer.WrittenMemory;
    }
}
