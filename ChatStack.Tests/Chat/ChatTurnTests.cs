using ChatStack.ChatApi.Streaming;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// A session answers one message at a time (<see cref="ChatStreamRegistry"/>): the HTTP behaviour is in
/// ChatProtocolTests and ChatApiHostTests; these pin the claim itself, races included.
/// </summary>
public class ChatTurnTests
{
    [Fact]
    public async Task Of_many_turns_started_at_once_in_one_session_exactly_one_runs()
    {
        var registry = new ChatStreamRegistry(TimeProvider.System);
        for (var round = 0; round < 200; round++)
        {
            using var start = new Barrier(4);
            var attempts = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                var stream = registry.TryStart("u", $"session-{round}", out var running);
                return (stream, running);
            })));

            var winner = Assert.Single(attempts, a => a.stream is not null).stream!;
            Assert.All(attempts.Where(a => a.stream is null), a => Assert.Same(winner, a.running));
            Assert.Same(winner, registry.RunningTurn($"session-{round}"));
            Assert.Same(winner, registry.Find(winner.Id));
        }
    }

    [Fact]
    public void A_completed_turn_frees_its_session_and_stays_resumable()
    {
        var registry = new ChatStreamRegistry(TimeProvider.System);
        var first = registry.TryStart("u", "s", out _)!;
        Assert.Null(registry.TryStart("u", "s", out var running));
        Assert.Same(first, running);
        Assert.NotNull(registry.TryStart("u", "other-session", out _));

        registry.Complete(first);

        Assert.True(first.IsCompleted);
        Assert.True(first.Completion.IsCompleted);
        Assert.Null(registry.RunningTurn("s"));
        Assert.Same(first, registry.Find(first.Id)); // Last-Event-ID still finds it
        var second = registry.TryStart("u", "s", out _);
        Assert.NotNull(second);
        Assert.NotSame(first, second);
    }

    [Fact]
    public void A_deletion_holds_its_session_like_a_turn_but_is_no_stream_to_follow()
    {
        var registry = new ChatStreamRegistry(TimeProvider.System);
        var deletion = registry.TryStart("u", "s", out _, deletion: true)!;

        Assert.Null(registry.TryStart("u", "s", out var running));
        Assert.Same(deletion, running);
        Assert.True(running!.IsDeletion);
        Assert.Null(registry.Find(deletion.Id));

        registry.Abandon(deletion);
        Assert.False(registry.TryStart("u", "s", out _)!.IsDeletion);
    }

    [Fact]
    public void An_abandoned_turn_frees_its_session_and_is_forgotten()
    {
        var registry = new ChatStreamRegistry(TimeProvider.System);
        var stream = registry.TryStart("u", "s", out _)!;

        registry.Abandon(stream);

        Assert.Null(registry.RunningTurn("s"));
        Assert.Null(registry.Find(stream.Id));
        Assert.NotNull(registry.TryStart("u", "s", out _));
    }

    [Fact]
    public void Completing_an_older_stream_does_not_free_a_newer_turn()
    {
        var registry = new ChatStreamRegistry(TimeProvider.System);
        var first = registry.TryStart("u", "s", out _)!;
        registry.Complete(first);
        var second = registry.TryStart("u", "s", out _)!;

        registry.Complete(first); // again: a late duplicate must not release the running turn

        Assert.Same(second, registry.RunningTurn("s"));
    }

    [Fact]
    public async Task Waiting_for_a_turn_returns_once_it_ends_or_gives_it_back_when_it_does_not()
    {
        var time = new FakeTimeProvider();
        var registry = new ChatStreamRegistry(time);
        var stream = registry.TryStart("u", "s", out _)!;

        // Another user's request learns nothing about the turn, and does not wait.
        Assert.Null(await registry.WaitForTurnAsync("someone-else", "s", TimeSpan.FromSeconds(2), CancellationToken.None));

        var ends = registry.WaitForTurnAsync("u", "s", TimeSpan.FromSeconds(2), CancellationToken.None);
        Assert.False(ends.IsCompleted);
        registry.Complete(stream);
        Assert.Null(await ends);

        var busy = registry.TryStart("u", "s", out _)!;
        var refused = registry.WaitForTurnAsync("u", "s", TimeSpan.FromSeconds(2), CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(refused.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Same(busy, await refused);
    }
    [Fact]
    public void A_run_whose_reader_left_goes_on_for_the_grace_and_a_reader_back_in_time_keeps_it_going()
    {
        var time = new FakeTimeProvider();
        var registry = new ChatStreamRegistry(time) { ReconnectGrace = TimeSpan.FromSeconds(10) };
        var stream = registry.TryStart("u", "s", out _)!;
        Assert.False(stream.IsUnread); // not read yet is not left: the response is still starting

        stream.Attach();
        stream.Detach();
        Assert.True(stream.IsUnread);
        time.Advance(TimeSpan.FromSeconds(9));
        Assert.False(stream.RunCancellation.IsCancellationRequested);

        stream.Attach(); // the client is back
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.False(stream.RunCancellation.IsCancellationRequested);
        Assert.False(stream.IsUnread);

        stream.Detach(); // and gone for good: a full grace from now, not from the first departure
        time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.False(stream.RunCancellation.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(stream.RunCancellation.IsCancellationRequested);
    }

    [Fact]
    public void A_finished_run_is_not_cancelled_and_a_grace_of_zero_cancels_at_once()
    {
        var time = new FakeTimeProvider();
        var registry = new ChatStreamRegistry(time) { ReconnectGrace = TimeSpan.FromSeconds(10) };
        var finished = registry.TryStart("u", "s1", out _)!;
        finished.Attach();
        registry.Complete(finished);
        finished.Detach();
        finished.Cancel();
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.False(finished.RunCancellation.IsCancellationRequested);

        registry.ReconnectGrace = TimeSpan.Zero;
        var immediate = registry.TryStart("u", "s2", out _)!;
        immediate.Attach();
        immediate.Detach();
        Assert.True(immediate.RunCancellation.IsCancellationRequested);
    }

    [Fact]
    public async Task A_new_message_stops_a_turn_nobody_reads_but_waits_for_one_that_is_read()
    {
        var time = new FakeTimeProvider();
        var registry = new ChatStreamRegistry(time);
        var left = registry.TryStart("u", "s1", out _)!;
        left.RunCancellation.Register(() => registry.Complete(left)); // the run ends when it is cancelled
        left.Attach();
        left.Detach();
        Assert.Null(await registry.WaitForTurnAsync("u", "s1", TimeSpan.FromSeconds(2), CancellationToken.None));
        Assert.True(left.RunCancellation.IsCancellationRequested);

        var read = registry.TryStart("u", "s2", out _)!;
        read.Attach(); // another tab still reads it
        var refused = registry.WaitForTurnAsync("u", "s2", TimeSpan.FromSeconds(2), CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Same(read, await refused);
        Assert.False(read.RunCancellation.IsCancellationRequested);

        // The client hung up and sent again at once: its old connection's end is seen while the send waits.
        var racing = registry.TryStart("u", "s3", out _)!;
        racing.RunCancellation.Register(() => registry.Complete(racing));
        racing.Attach();
        var waiting = registry.WaitForTurnAsync("u", "s3", TimeSpan.FromSeconds(2), CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        racing.Detach();
        Assert.Null(await waiting);
        Assert.True(racing.RunCancellation.IsCancellationRequested);
    }
}
