using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChatStack.ChatApi.Streaming;

/// <summary>The envelope every event's <c>data:</c> line carries.</summary>
internal sealed record ChatEventEnvelope([property: JsonPropertyName("type")] string Type, [property: JsonPropertyName("data")] object Data);

/// <summary>One SSE event, serialized once and replayed as often as readers need it.</summary>
internal sealed record SseEvent(long Sequence, string Id, string Type, string Wire);

/// <summary>Where an agent run writes its events.</summary>
internal interface IChatEventWriter
{
    void Write(string type, object data);
}

/// <summary>
/// The events of one run, kept so a client can resume with <c>Last-Event-ID</c> while the run goes on or
/// shortly after it ended. Readers attach and detach; when the last reader leaves a run still in progress the
/// run is cancelled (a client that hangs up stops the model call), and what it produced so far is still saved.
/// </summary>
internal sealed class ChatStream : IChatEventWriter
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Event data is never embedded in HTML: keep "+", accents, CJK and emoji as themselves instead of \uXXXX,
        // which would double or triple the bytes of a non-English answer. Control characters (newlines) stay escaped.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly List<SseEvent> _events = [];
    private readonly CancellationTokenSource _cancel = new();
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _readers;

    // Whether a reader found nothing new and waits: only then does a write need to wake anyone.
    private bool _awaited;

    public ChatStream(string id, string userId, string sessionId)
    {
        Id = id;
        UserId = userId;
        SessionId = sessionId;
    }

    public string Id { get; }

    public string UserId { get; }

    public string SessionId { get; }

    public bool IsCompleted { get; private set; }

    public DateTimeOffset? CompletedAt { get; private set; }

    /// <summary>Cancelled when every reader has gone while the run was still going.</summary>
    public CancellationToken RunCancellation => _cancel.Token;

    public void Write(string type, object data)
    {
        // Serialized outside the lock: the reader takes the same lock for every batch it sends.
        var json = JsonSerializer.Serialize(new ChatEventEnvelope(type, data), Json);
        lock (_gate)
        {
            if (IsCompleted)
            {
                throw new InvalidOperationException("The stream has ended.");
            }

            var sequence = _events.Count + 1;
            var id = string.Concat(Id, ".", sequence.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _events.Add(new SseEvent(sequence, id, type, string.Concat("id: ", id, "\nevent: ", type, "\ndata: ", json, "\n\n")));
            if (_awaited)
            {
                Signal();
            }
        }
    }

    public void Complete()
    {
        lock (_gate)
        {
            IsCompleted = true;
            CompletedAt = DateTimeOffset.UtcNow;
            Signal();
        }
    }

    /// <summary>Events after <paramref name="afterSequence"/>, or an empty list when there are none yet.</summary>
    public (IReadOnlyList<SseEvent> Events, bool Completed, Task Changed) Read(long afterSequence)
    {
        lock (_gate)
        {
            var from = (int)Math.Clamp(afterSequence, 0, _events.Count);
            _awaited |= from == _events.Count && !IsCompleted;
            return (_events.GetRange(from, _events.Count - from), IsCompleted, _changed.Task);
        }
    }

    public void Attach() => Interlocked.Increment(ref _readers);

    public void Detach()
    {
        if (Interlocked.Decrement(ref _readers) == 0 && !IsCompleted)
        {
            _cancel.Cancel();
        }
    }

    private void Signal()
    {
        _awaited = false;
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    /// <summary>Splits an SSE id into stream id and sequence.</summary>
    public static bool TryParseEventId(string? eventId, out string streamId, out long sequence)
    {
        streamId = "";
        sequence = 0;
        var dot = eventId?.LastIndexOf('.') ?? -1;
        if (dot <= 0 || !long.TryParse(eventId.AsSpan(dot + 1), out sequence) || sequence < 0)
        {
            return false;
        }

        streamId = eventId![..dot];
        return true;
    }
}

/// <summary>
/// Streams of this process, for resuming. In memory: a resume must reach the instance that runs the stream
/// (one replica, or session affinity), which is what a stream in progress needs anyway.
/// </summary>
internal sealed class ChatStreamRegistry(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ChatStream> _streams = new(StringComparer.Ordinal);

    public TimeSpan ResumeWindow { get; set; } = TimeSpan.FromMinutes(5);

    public ChatStream Start(string userId, string sessionId)
    {
        Sweep();
        var stream = new ChatStream(Guid.NewGuid().ToString("N"), userId, sessionId);
        _streams[stream.Id] = stream;
        return stream;
    }

    public ChatStream? Find(string streamId) => _streams.TryGetValue(streamId, out var stream) ? stream : null;

    private void Sweep()
    {
        var cutoff = time.GetUtcNow() - ResumeWindow;
        foreach (var (id, stream) in _streams)
        {
            if (stream.CompletedAt is { } completed && completed < cutoff)
            {
                _streams.TryRemove(id, out _);
            }
        }
    }
}
