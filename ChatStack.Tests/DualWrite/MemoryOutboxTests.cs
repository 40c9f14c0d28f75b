using ChatStack.ChatApi.DualWrite;

namespace ChatStack.Tests.DualWrite;

public sealed class MemoryOutboxTests
{
    private static OutboxRecord Record(string id) => new(id, [1, 2, 3], new Dictionary<string, string> { ["event_type"] = "user_message" }, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task Records_are_read_oldest_first_and_only_those_published_are_removed()
    {
        var outbox = new MemoryOutbox(new DualWriteOptions(), new OutboxSignal());
        outbox.Add([Record("a"), Record("b")]);
        outbox.Add([Record("c")]);

        var batch = await outbox.ReadAsync(2, default);
        Assert.Equal(["a", "b"], batch.Select(r => r.EventId));

        // A record added while a batch was being published stays for the next batch.
        outbox.Add([Record("d")]);
        await outbox.RemoveAsync(batch, default);
        Assert.Equal(["c", "d"], (await outbox.ReadAsync(10, default)).Select(r => r.EventId));
    }

    [Fact]
    public void A_full_outbox_has_no_room_for_new_chats_but_still_takes_the_events_of_runs_under_way()
    {
        var outbox = new MemoryOutbox(new DualWriteOptions { MemoryOutboxCapacity = 2 }, new OutboxSignal());
        outbox.Add([Record("a")]);
        Assert.True(outbox.HasRoom);

        outbox.Add([Record("b"), Record("c")]);
        Assert.False(outbox.HasRoom);
        Assert.Equal(3, outbox.Count);
    }

    [Fact]
    public async Task Adding_records_wakes_the_relay()
    {
        var signal = new OutboxSignal();
        var outbox = new MemoryOutbox(new DualWriteOptions(), signal);
        outbox.Add([Record("a")]);
        Assert.True(await signal.WaitAsync(TimeSpan.Zero, default));
    }
}
