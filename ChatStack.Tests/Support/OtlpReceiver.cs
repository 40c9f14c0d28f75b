using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace ChatStack.Tests.Support;

/// <summary>A span as an OTLP exporter sent it: which service, which trace, its parent, name and attributes.</summary>
public sealed record ReceivedSpan(string Service, string TraceId, string SpanId, string ParentSpanId, string Name, IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// An OTLP/HTTP (protobuf) endpoint the AppHost's services export to, in place of the dashboard a test run does
/// not start. Only spans are kept, decoded straight from the protobuf wire format (service name, ids, name,
/// string and integer attributes) so no copy of the OTLP protos is needed; metrics and logs are accepted and dropped.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedSpan> _spans = new();
    private LocalServer _server = null!;

    public Uri Endpoint => _server.Address;

    public IReadOnlyList<ReceivedSpan> Spans => [.. _spans];

    public static async Task<OtlpReceiver> StartAsync()
    {
        var receiver = new OtlpReceiver();
        receiver._server = await LocalServer.StartAsync(app =>
        {
            app.MapPost("/v1/traces", async (HttpRequest request) =>
            {
                using var body = new MemoryStream();
                await request.Body.CopyToAsync(body);
                foreach (var span in Decode(body.ToArray()))
                {
                    receiver._spans.Enqueue(span);
                }

                return Results.Bytes([], "application/x-protobuf");
            });
            app.MapPost("/v1/metrics", () => Results.Bytes([], "application/x-protobuf"));
            app.MapPost("/v1/logs", () => Results.Bytes([], "application/x-protobuf"));
        });
        return receiver;
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    private static IEnumerable<ReceivedSpan> Decode(byte[] request)
    {
        var spans = new List<ReceivedSpan>();
        foreach (var resourceSpans in Fields(request, 1))
        {
            // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
            var service = Fields(resourceSpans, 1).SelectMany(r => Attributes(r, 1)).FirstOrDefault(a => a.Key == "service.name").Value ?? "";
            foreach (var scopeSpans in Fields(resourceSpans, 2))
            {
                // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
                foreach (var span in Fields(scopeSpans, 2))
                {
                    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; repeated KeyValue attributes = 9; }
                    spans.Add(new ReceivedSpan(service,
                        Hex(Fields(span, 1).FirstOrDefault()), Hex(Fields(span, 2).FirstOrDefault()), Hex(Fields(span, 4).FirstOrDefault()),
                        System.Text.Encoding.UTF8.GetString(Fields(span, 5).FirstOrDefault() ?? []),
                        Attributes(span, 9).GroupBy(a => a.Key).ToDictionary(g => g.Key, g => g.First().Value ?? "")));
                }
            }
        }

        return spans;
    }

    // KeyValue { string key = 1; AnyValue value = 2; }  AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; }
    private static IEnumerable<KeyValuePair<string, string?>> Attributes(byte[] message, int field) =>
        Fields(message, field).Select(kv =>
        {
            var key = System.Text.Encoding.UTF8.GetString(Fields(kv, 1).FirstOrDefault() ?? []);
            string? value = null;
            if (Fields(kv, 2).FirstOrDefault() is { } any)
            {
                var input = new CodedInputStream(any);
                uint tag;
                while ((tag = input.ReadTag()) != 0)
                {
                    switch (WireFormat.GetTagFieldNumber(tag))
                    {
                        case 1:
                            value = input.ReadString();
                            break;
                        case 2:
                            value = input.ReadBool() ? "true" : "false";
                            break;
                        case 3:
                            value = input.ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
                            break;
                        default:
                            input.SkipLastField();
                            break;
                    }
                }
            }

            return new KeyValuePair<string, string?>(key, value);
        });

    /// <summary>The raw bytes of every length-delimited occurrence of <paramref name="field"/>.</summary>
    private static List<byte[]> Fields(byte[] message, int field)
    {
        var found = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == field && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                found.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }

        return found;
    }

    private static string Hex(byte[]? bytes) => bytes is null ? "" : Convert.ToHexStringLower(bytes);
}
