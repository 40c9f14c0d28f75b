using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ChatStack.ChatApi.Streaming;

/// <summary>The envelope every event's <c>data:</c> line carries.</summary>
internal sealed record ChatEventEnvelope([property: JsonPropertyName("type")] string Type, [property: JsonPropertyName("data")] object Data);

/// <summary>Where an agent run writes its events.</summary>
internal interface IChatEventWriter
{
    void Write(string type, object data);
}

/// <summary>
/// The events of one run, kept so a client can resume with <c>Last-Event-ID</c> while the run goes on or
/// shortly after it ended. Readers attach and detach; when the last reader leaves a run still in progress, the run
/// goes on for the reconnect grace so a client whose connection dropped can pick it up, then is cancelled (a client
/// that hung up stops the model call), and what it produced so far is still saved.
/// </summary>
/// <remarks>
/// Thousands of streams are open at once and each is kept for the resume window, so an event is stored as
/// compactly as it can be replayed from: a type number and its data's UTF-8 JSON, back to back in 4 KB chunks,
/// plus one end offset. The id line, event line and envelope (<c>{"type":…,"data":…}</c>) are the same for every
/// event of a type and are written around the data when it is sent. A delta costs ~25 bytes instead of a
/// ~450-byte record with two UTF-16 strings.
/// </remarks>
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

    private const int ChunkSize = 4096;
    private static readonly byte[] FrameEnd = "}\n\n"u8.ToArray();

    // The chunks hold one logical byte string: [type number][data JSON] per event; an event may span two chunks.
    private readonly List<byte[]> _chunks = [];
    private readonly List<int> _ends = [];
    private readonly byte[] _idPrefix;
    private readonly CancellationTokenSource _cancel = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider _time;
    private readonly TimeSpan _reconnectGrace;
    private int _length;
    private DateTimeOffset? _completedAt; // guarded by _gate
    private int _readers; // guarded by _gate
    private bool _attached; // a reader has attached at least once
    private ITimer? _grace; // the pending cancellation once the last reader left
    private int _graceNumber; // which departure the pending cancellation is for: an older timer's late callback is void
    private TaskCompletionSource _unread = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Whether a reader found nothing new and waits: only then does a write need to wake anyone.
    private bool _awaited;

    public ChatStream(string id, string userId, string sessionId, TimeProvider? time = null, TimeSpan reconnectGrace = default)
    {
        _time = time ?? TimeProvider.System;
        _reconnectGrace = reconnectGrace;
        Id = id;
        UserId = userId;
        SessionId = sessionId;
        _idPrefix = Encoding.UTF8.GetBytes($"id: {id}.");
    }

    public string Id { get; }

    public string UserId { get; }

    public string SessionId { get; }

    /// <summary>Not a turn: a delete holding the session. It has no events to follow.</summary>
    public bool IsDeletion { get; init; }

    /// <summary>
    /// A copy of a stream that another instance runs, filled from Firestore for a reader who resumed here: stopping it
    /// means asking that instance (<see cref="FirestoreStreamRelay"/>); its own cancellation only says nobody reads it.
    /// </summary>
    public bool IsReplica { get; init; }

    public bool IsCompleted { get; private set; }

    // Read under the lock: the registry's sweep reads it from other threads, and a 16-byte value can tear.
    public DateTimeOffset? CompletedAt
    {
        get
        {
            lock (_gate)
            {
                return _completedAt;
            }
        }
    }

    /// <summary>Cancelled when the run was stopped, or every reader had gone for the reconnect grace while it was still going.</summary>
    public CancellationToken RunCancellation => _cancel.Token;

    /// <summary>Whether the run is going with nobody reading it: its readers left, and the grace has not ended yet.</summary>
    public bool IsUnread
    {
        get
        {
            lock (_gate)
            {
                return _attached && _readers == 0 && !IsCompleted;
            }
        }
    }

    /// <summary>Completes when the last reader leaves a run still going (check <see cref="IsUnread"/>: one may be back).</summary>
    public Task Unread
    {
        get
        {
            lock (_gate)
            {
                return _unread.Task;
            }
        }
    }

    /// <summary>Stops the run now: a client's stop, or a new message to the session its readers left.</summary>
    public void Cancel()
    {
        if (!IsCompleted)
        {
            _cancel.Cancel();
        }
    }

    public void Write(string type, object data) =>
        // Serialized outside the lock: readers take the same lock for every batch they send.
        WriteJson(type, JsonSerializer.SerializeToUtf8Bytes(data, data.GetType(), Json));

    private void WriteJson(string type, ReadOnlySpan<byte> json)
    {
        var typeNumber = EventType.NumberOf(type);
        lock (_gate)
        {
            if (IsCompleted)
            {
                throw new InvalidOperationException("The stream has ended.");
            }

            Append([typeNumber]);
            Append(json);
            _ends.Add(_length);
            if (_awaited)
            {
                Signal();
            }
        }
    }

    /// <summary>Completes when the run has ended and written its last event.</summary>
    public Task Completion => _completion.Task;

    public void Complete()
    {
        lock (_gate)
        {
            IsCompleted = true;
            _completedAt = _time.GetUtcNow();
            _grace?.Dispose();
            _grace = null;
            Signal();
        }

        _completion.TrySetResult();
    }

    /// <summary>How many events the stream has written so far (the sequence of the last one).</summary>
    public long EventCount
    {
        get
        {
            lock (_gate)
            {
                return _ends.Count;
            }
        }
    }

    /// <summary>
    /// Writes the events after <paramref name="afterSequence"/> as SSE frames into <paramref name="output"/> and
    /// returns the sequence of the last one (<paramref name="afterSequence"/> when there is none yet).
    /// </summary>
    public (long Last, bool Completed, Task Changed) CopyTo(IBufferWriter<byte> output, long afterSequence)
    {
        lock (_gate)
        {
            var from = (int)Math.Clamp(afterSequence, 0, _ends.Count);
            for (var i = from; i < _ends.Count; i++)
            {
                var start = i == 0 ? 0 : _ends[i - 1];
                WriteFrame(output, i + 1, start, _ends[i]);
            }

            _awaited |= from == _ends.Count && !IsCompleted;
            return (Math.Max(from, _ends.Count), IsCompleted, _changed.Task);
        }
    }

    /// <summary>
    /// Copies the events after <paramref name="afterSequence"/>, about <paramref name="maxBytes"/> of them (at least
    /// one), into <paramref name="output"/> in a form another process reads back with <see cref="Import"/>: per event
    /// its type's length and name, its data's length (little-endian) and data. Returns the sequence of the last one.
    /// </summary>
    public long Export(IBufferWriter<byte> output, long afterSequence, int maxBytes)
    {
        lock (_gate)
        {
            var i = (int)Math.Clamp(afterSequence, 0, _ends.Count);
            for (var written = 0; i < _ends.Count && (written == 0 || written < maxBytes); i++)
            {
                var start = i == 0 ? 0 : _ends[i - 1];
                var type = EventType.Name(Byte(start));
                var length = _ends[i] - start - 1;
                var head = output.GetSpan(1 + type.Length + 4);
                head[0] = (byte)type.Length;
                type.CopyTo(head[1..]);
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head[(1 + type.Length)..], length);
                output.Advance(1 + type.Length + 4);
                for (var at = start + 1; at < _ends[i];)
                {
                    var take = Math.Min(_ends[i] - at, ChunkSize - (at % ChunkSize));
                    output.Write(_chunks[at / ChunkSize].AsSpan(at % ChunkSize, take));
                    at += take;
                }

                written += 5 + type.Length + length;
            }

            return Math.Max(i, afterSequence);
        }
    }

    /// <summary>Appends events <see cref="Export"/> wrote, which follow this stream's last one.</summary>
    public void Import(ReadOnlySpan<byte> events)
    {
        while (!events.IsEmpty)
        {
            var type = Encoding.UTF8.GetString(events.Slice(1, events[0]));
            events = events[(1 + events[0])..];
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(events);
            WriteJson(type, events.Slice(4, length));
            events = events[(4 + length)..];
        }
    }

    public void Attach()
    {
        lock (_gate)
        {
            _readers++;
            _attached = true;
            if (_unread.Task.IsCompleted)
            {
                _unread = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            _grace?.Dispose(); // a reader is back in time: the run goes on
            _grace = null;
        }
    }

    public void Detach()
    {
        lock (_gate)
        {
            if (--_readers > 0 || IsCompleted)
            {
                return;
            }

            _unread.TrySetResult();
            if (_reconnectGrace > TimeSpan.Zero)
            {
                _grace?.Dispose();
                var number = ++_graceNumber;
                _grace = _time.CreateTimer(_ => GraceEnded(number), null, _reconnectGrace, Timeout.InfiniteTimeSpan);
                return;
            }
        }

        // Outside the lock: cancellation runs the run's continuations, which write events.
        _cancel.Cancel();
    }

    private void GraceEnded(int number)
    {
        lock (_gate)
        {
            if (_readers > 0 || IsCompleted || number != _graceNumber)
            {
                return;
            }

            _grace?.Dispose();
            _grace = null;
        }

        _cancel.Cancel();
    }

    /// <summary><c>id: {stream}.{sequence}\nevent: {type}\ndata: {"type":"{type}","data":{data}}\n\n</c>.</summary>
    private void WriteFrame(IBufferWriter<byte> output, long sequence, int start, int end)
    {
        output.Write(_idPrefix);
        var digits = output.GetSpan(20);
        sequence.TryFormat(digits, out var written, provider: CultureInfo.InvariantCulture);
        output.Advance(written);
        output.Write(EventType.Head(Byte(start)));
        for (var at = start + 1; at < end;)
        {
            var chunk = _chunks[at / ChunkSize];
            var take = Math.Min(end - at, ChunkSize - (at % ChunkSize));
            output.Write(chunk.AsSpan(at % ChunkSize, take));
            at += take;
        }

        output.Write(FrameEnd);
    }

    private byte Byte(int at) => _chunks[at / ChunkSize][at % ChunkSize];

    private void Append(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            if (_length == _chunks.Count * ChunkSize)
            {
                _chunks.Add(new byte[ChunkSize]);
            }

            var room = _chunks[^1].AsSpan(_length % ChunkSize);
            var take = Math.Min(room.Length, bytes.Length);
            bytes[..take].CopyTo(room);
            bytes = bytes[take..];
            _length += take;
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

    /// <summary>
    /// Event types by number, with the bytes that follow the id of each: its event line and the envelope up to
    /// the data. Types are the few constants of <c>ChatEventTypes</c>, so the table stays tiny.
    /// </summary>
    private static class EventType
    {
        private static readonly Lock Gate = new();
        private static readonly Dictionary<string, byte> Numbers = new(StringComparer.Ordinal);
        private static byte[][] _heads = [];
        private static byte[][] _names = []; // UTF-8, for Export

        public static byte NumberOf(string type)
        {
            lock (Gate)
            {
                if (Numbers.TryGetValue(type, out var number))
                {
                    return number;
                }

                if (_heads.Length > byte.MaxValue || Encoding.UTF8.GetByteCount(type) > byte.MaxValue
                    || type.Any(c => c is '"' or '\\' or '\n' or '\r' || char.IsControl(c)))
                {
                    throw new ArgumentException($"'{type}' cannot be an SSE event type here.", nameof(type));
                }

                number = (byte)_heads.Length;
                _names = [.. _names, Encoding.UTF8.GetBytes(type)];
                _heads = [.. _heads, Encoding.UTF8.GetBytes($"\nevent: {type}\ndata: {{\"type\":\"{type}\",\"data\":")];
                Numbers[type] = number;
                return number;
            }
        }

        public static byte[] Head(byte number) => Volatile.Read(ref _heads)[number];

        public static byte[] Name(byte number) => Volatile.Read(ref _names)[number];
    }
}

/// <summary>
/// Streams of this process, for resuming. In memory: a resume must reach the instance that runs the stream
/// (one replica, or session affinity), which is what a stream in progress needs anyway.
/// </summary>
internal sealed class ChatStreamRegistry : IDisposable
{
    // How often finished streams past the resume window are dropped: an instance that starts no new chats and gets
    // no resumes must still release their events. Find checks the window itself, so this only bounds memory.
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    private readonly TimeProvider _time;
    private readonly ITimer _sweeper;
    private readonly ConcurrentDictionary<string, ChatStream> _streams = new(StringComparer.Ordinal);

    // Session id → the stream of its turn in progress. A session answers one message at a time: a second turn
    // started meanwhile would read a history without the first turn's answer and interleave its messages with it.
    private readonly ConcurrentDictionary<string, ChatStream> _running = new(StringComparer.Ordinal);

    public ChatStreamRegistry(TimeProvider time)
    {
        _time = time;
        _sweeper = time.CreateTimer(_ => Sweep(), null, SweepInterval, SweepInterval);
    }

    /// <summary>This process among the chat API's instances: the turns' holds name it, for a stop sent to another instance.</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString("N");

    /// <summary>How long a finished stream can still be resumed.</summary>
    public TimeSpan ResumeWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How many streams are kept for resuming: running, or finished within the resume window.</summary>
    public int Count => _streams.Count;

    /// <summary>How long a run goes on once its last reader has left, for that reader to come back.</summary>
    public TimeSpan ReconnectGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A stream for a new turn of <paramref name="sessionId"/>, or null when a turn of that session is still running
    /// (<paramref name="running"/>). Claim it before reading the session's history, so the history is complete. A
    /// <paramref name="deletion"/> holds the session the same way, but is no stream anyone can follow.
    /// </summary>
    public ChatStream? TryStart(string userId, string sessionId, out ChatStream? running, bool deletion = false)
    {
        var stream = new ChatStream(Guid.NewGuid().ToString("N"), userId, sessionId, _time, ReconnectGrace) { IsDeletion = deletion };
        while (!_running.TryAdd(sessionId, stream))
        {
            if (_running.TryGetValue(sessionId, out running))
            {
                return null;
            }
        }

        if (!deletion)
        {
            _streams[stream.Id] = stream;
        }

        running = null;
        return stream;
    }

    /// <summary>
    /// Whether <paramref name="streamId"/> ran here and has ended, within the resume window: its hold on its session,
    /// if its last commit could not give it up, is this instance's to take over. (An abandoned stream is forgotten.)
    /// </summary>
    public bool HasEnded(string streamId) => _streams.TryGetValue(streamId, out var stream) && stream.IsCompleted && !stream.IsReplica;

    /// <summary>
    /// Keeps <paramref name="replica"/> of a stream another instance runs, for resuming here; the one kept already
    /// when another reader here got there first.
    /// </summary>
    public ChatStream AddReplica(ChatStream replica) => _streams.GetOrAdd(replica.Id, replica);

    /// <summary>Forgets a replica that stopped following its stream (nobody read it any more) before the stream ended.</summary>
    public void Forget(ChatStream replica) => _streams.TryRemove(KeyValuePair.Create(replica.Id, replica));

    /// <summary>The stream of <paramref name="sessionId"/>'s turn in progress, if any.</summary>
    public ChatStream? RunningTurn(string sessionId) => _running.GetValueOrDefault(sessionId);

    /// <summary>A running stream, or one finished within the resume window; null for any other.</summary>
    public ChatStream? Find(string streamId)
    {
        if (!_streams.TryGetValue(streamId, out var stream))
        {
            return null;
        }

        // The sweep runs only every SweepInterval: a stream past its window until then is gone all the same.
        if (IsExpired(stream, _time.GetUtcNow() - ResumeWindow))
        {
            _streams.TryRemove(KeyValuePair.Create(streamId, stream));
            return null;
        }

        return stream;
    }

    /// <summary>
    /// Waits up to <paramref name="wait"/> for the session's turn in progress to end; returns it when it has not. A
    /// client that stops an answer and sends again at once finds the stopped turn still saving what it had. A turn
    /// nobody reads any more (its client hung up and sends again instead of resuming) is stopped first.
    /// </summary>
    public async Task<ChatStream?> WaitForTurnAsync(string userId, string sessionId, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (RunningTurn(sessionId) is not { } running || running.UserId != userId)
        {
            return null;
        }

        var started = _time.GetTimestamp();
        try
        {
            if (!running.IsUnread)
            {
                // A client that hung up and sends again at once can be here before its old connection's end is seen.
                await Task.WhenAny(running.Completion, running.Unread).WaitAsync(wait, _time, cancellationToken);
            }

            if (running.IsUnread)
            {
                running.Cancel();
            }

            var left = wait - _time.GetElapsedTime(started);
            await running.Completion.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken);
            return null;
        }
        catch (TimeoutException)
        {
            return running;
        }
    }

    /// <summary>Ends a turn's stream; its session takes its next message.</summary>
    public void Complete(ChatStream stream)
    {
        _running.TryRemove(KeyValuePair.Create(stream.SessionId, stream));
        stream.Complete();
    }

    /// <summary>Forgets a stream whose run never started (the request failed after <see cref="TryStart"/>).</summary>
    public void Abandon(ChatStream stream)
    {
        _streams.TryRemove(stream.Id, out _);
        Complete(stream);
    }

    public void Dispose() => _sweeper.Dispose();

    private static bool IsExpired(ChatStream stream, DateTimeOffset cutoff) => stream.CompletedAt is { } completed && completed < cutoff;

    private void Sweep()
    {
        var cutoff = _time.GetUtcNow() - ResumeWindow;
        foreach (var (id, stream) in _streams)
        {
            if (IsExpired(stream, cutoff))
            {
                _streams.TryRemove(KeyValuePair.Create(id, stream));
            }
        }
    }
}
