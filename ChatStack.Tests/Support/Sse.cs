using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace ChatStack.Tests.Support;

/// <summary>One server-sent event as a client sees it; comments (heartbeats) have <see cref="IsComment"/> set.</summary>
public sealed record SseMessage(string? Id, string Event, string Data, bool IsComment = false)
{
    /// <summary>The envelope's <c>data</c> member.</summary>
    public JsonElement Payload => JsonDocument.Parse(Data).RootElement.GetProperty("data");

    public string EnvelopeType => JsonDocument.Parse(Data).RootElement.GetProperty("type").GetString()!;
}

/// <summary>A minimal text/event-stream parser, per the WHATWG rules the browser's EventSource follows.</summary>
public static class Sse
{
    public static async IAsyncEnumerable<SseMessage> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? id = null;
        string? type = null;
        var data = new StringBuilder();
        var hasData = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (hasData)
                {
                    yield return new SseMessage(id, type ?? "message", data.ToString());
                }

                (type, hasData) = (null, false);
                data.Clear();
                continue;
            }

            if (line[0] == ':')
            {
                yield return new SseMessage(null, "", line[1..].Trim(), IsComment: true);
                continue;
            }

            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            switch (field)
            {
                case "id":
                    id = value;
                    break;
                case "event":
                    type = value;
                    break;
                case "data":
                    if (hasData)
                    {
                        data.Append('\n');
                    }

                    data.Append(value);
                    hasData = true;
                    break;
            }
        }
    }

    /// <summary>Reads the whole stream (events only, no comments).</summary>
    public static async Task<List<SseMessage>> ReadAllAsync(HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        var events = new List<SseMessage>();
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var message in ReadAsync(body, cancellationToken))
        {
            if (!message.IsComment)
            {
                events.Add(message);
            }
        }

        return events;
    }
}
