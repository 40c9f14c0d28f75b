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
}
