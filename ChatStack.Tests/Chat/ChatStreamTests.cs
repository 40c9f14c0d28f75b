using System.Buffers;
using System.Text;
using System.Text.Json;
using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Streaming;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// A stream keeps its events compactly (type number + UTF-8 data) and rebuilds the SSE frames when sending: the
/// frames must be exactly what serializing each envelope whole would give, wherever an event falls in the chunks.
/// </summary>
public class ChatStreamTests
{
    [Fact]
    public void Frames_are_rebuilt_byte_for_byte_across_chunks_and_multibyte_text()
    {
        var stream = new ChatStream("s1", "u", "session");
        var written = new List<(string Type, object Data)>();
        void Write(string type, object data)
        {
            stream.Write(type, data);
            written.Add((type, data));
        }

        // Enough deltas to fill several 4 KB chunks, with accents, CJK, emoji and a newline among them, and one
        // event larger than a chunk.
        for (var i = 0; i < 600; i++)
        {
            Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent(i % 5 == 0 ? "héllo 世界 👋\n" : $" word{i}"));
        }

        Write(ChatEventTypes.ToolEnd, new ToolEndEvent("search_history", new Dictionary<string, string?> { ["query"] = "ünïcode" }, new string('x', 9000), 12.5, "ok"));
        Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent("end"));

        var output = new ArrayBufferWriter<byte>();
        var (last, completed, _) = stream.CopyTo(output, 0);

        Assert.Equal(written.Count, last);
        Assert.False(completed);
        Assert.Equal(Expected("s1", written, 0), Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void A_replica_filled_from_exported_pieces_sends_the_same_frames_as_its_stream()
    {
        var stream = new ChatStream("s5", "u", "session");
        for (var i = 0; i < 600; i++)
        {
            stream.Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent(i % 7 == 0 ? "héllo 世界 👋\n" : $" word{i}"));
        }

        stream.Write(ChatEventTypes.ToolEnd, new ToolEndEvent("search_history", new Dictionary<string, string?>(), new string('x', 9000), 1, "ok"));
        stream.Write(ChatEventTypes.Done, new { finish_reason = "stop" });

        // In pieces of about 1 KB (one event at least, so the 9 KB one goes alone), as the copy is written.
        var replica = new ChatStream("s5", "u", "session") { IsReplica = true };
        var pieces = 0;
        for (long copied = 0; copied < stream.EventCount; pieces++)
        {
            var piece = new ArrayBufferWriter<byte>();
            var next = stream.Export(piece, copied, maxBytes: 1024);
            Assert.True(next > copied);
            replica.Import(piece.WrittenSpan);
            Assert.Equal(next, replica.EventCount);
            copied = next;
        }

        Assert.InRange(pieces, 10, 600);
        var (original, copy) = (new ArrayBufferWriter<byte>(), new ArrayBufferWriter<byte>());
        stream.CopyTo(original, 0);
        replica.CopyTo(copy, 0);
        Assert.Equal(Encoding.UTF8.GetString(original.WrittenSpan), Encoding.UTF8.GetString(copy.WrittenSpan));
        Assert.Equal(stream.EventCount, stream.Export(new ArrayBufferWriter<byte>(), stream.EventCount, 1024)); // nothing after the last
    }

    [Fact]
    public void Resuming_after_a_sequence_sends_only_the_later_events_with_their_ids()
    {
        var stream = new ChatStream("s2", "u", "session");
        var written = new List<(string Type, object Data)>();
        foreach (var text in new[] { "a", "b", "c", "d", "e" })
        {
            stream.Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent(text));
            written.Add((ChatEventTypes.MessageDelta, new MessageDeltaEvent(text)));
        }

        stream.Complete();
        var output = new ArrayBufferWriter<byte>();
        var (last, completed, _) = stream.CopyTo(output, 3);

        Assert.Equal(5, last);
        Assert.True(completed);
        Assert.Equal(Expected("s2", written, 3), Encoding.UTF8.GetString(output.WrittenSpan));
        Assert.StartsWith("id: s2.4\n", Encoding.UTF8.GetString(output.WrittenSpan), StringComparison.Ordinal);

        // Nothing new: nothing written, and the position stays.
        var none = new ArrayBufferWriter<byte>();
        Assert.Equal(5, stream.CopyTo(none, 5).Last);
        Assert.Equal(0, none.WrittenCount);
        Assert.Throws<InvalidOperationException>(() => stream.Write(ChatEventTypes.MessageDelta, new MessageDeltaEvent("late")));
    }

    [Fact]
    public void A_finished_stream_can_be_resumed_for_the_resume_window_and_is_gone_after_it()
    {
        var time = new FakeTimeProvider();
        using var registry = new ChatStreamRegistry(time) { ResumeWindow = TimeSpan.FromMinutes(5) };
        var stream = registry.TryStart("u", "s", out _)!;
        registry.Complete(stream);

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Same(stream, registry.Find(stream.Id));

        // Past the window, before any sweep has run: the same answer as for a stream that never was.
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(registry.Find(stream.Id));
        Assert.Equal(0, registry.Count);
    }

    [Fact]
    public void Finished_streams_are_released_after_the_resume_window_on_an_instance_that_starts_nothing_new()
    {
        var time = new FakeTimeProvider();
        using var registry = new ChatStreamRegistry(time) { ResumeWindow = TimeSpan.FromMinutes(5) };
        var finished = registry.TryStart("u", "s1", out _)!;
        var running = registry.TryStart("u", "s2", out _)!;
        registry.Complete(finished);
        Assert.Equal(2, registry.Count);

        // No chat starts and nobody resumes: the events are dropped all the same, a running stream's are kept.
        time.Advance(TimeSpan.FromMinutes(7));
        Assert.Equal(1, registry.Count);
        Assert.Same(running, registry.Find(running.Id));
    }

    // What the stream used to keep per event: the whole frame, the envelope serialized in one piece.
    private static string Expected(string streamId, List<(string Type, object Data)> events, int after) =>
        string.Concat(events.Skip(after).Select((e, i) =>
            $"id: {streamId}.{after + i + 1}\nevent: {e.Type}\ndata: {JsonSerializer.Serialize(new ChatEventEnvelope(e.Type, e.Data), ChatStream.Json)}\n\n"));
}
