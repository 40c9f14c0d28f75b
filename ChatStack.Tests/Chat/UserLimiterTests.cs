using Microsoft.Extensions.Configuration;
using ChatStack.ChatApi.Limits;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

public class UserLimiterTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Requests_over_the_rolling_window_are_refused_with_a_retry_time_then_admitted_again()
    {
        var limiter = new UserLimiter(new LimitOptions { RequestsPerWindow = 2, RequestWindowSeconds = 60 }, _time);
        Assert.Equal(1, limiter.TryAdmit("alice").Remaining);
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(limiter.TryAdmit("alice").Allowed);
        var refused = limiter.TryAdmit("alice");
        Assert.False(refused.Allowed);
        Assert.Equal(LimitDecision.RateLimited, refused.Code);
        Assert.Equal(TimeSpan.FromSeconds(40), refused.RetryAfter);
        Assert.True(limiter.TryAdmit("bob").Allowed); // per user
        _time.Advance(TimeSpan.FromSeconds(40));
        Assert.True(limiter.TryAdmit("alice").Allowed);
    }

    [Fact]
    public void A_slot_given_back_frees_its_own_place_once_and_none_after_it_left_the_window()
    {
        var limiter = new UserLimiter(new LimitOptions { RequestsPerWindow = 2, RequestWindowSeconds = 60 }, _time);
        var kept = limiter.TryAdmit("alice");
        _time.Advance(TimeSpan.FromSeconds(20));
        var failed = limiter.TryAdmit("alice");

        var standing = failed.Slot!.Release();
        Assert.Equal((2L, 1L, TimeSpan.FromSeconds(40)), (standing.Limit, standing.Remaining, standing.Reset)); // the kept one still resets the window
        Assert.Equal(1, failed.Slot.Release().Remaining); // twice is once
        Assert.True(limiter.TryAdmit("alice").Allowed);
        Assert.False(limiter.TryAdmit("alice").Allowed);

        // Gone from the window by itself: giving it back now frees nothing that a later request took.
        _time.Advance(TimeSpan.FromSeconds(41));
        Assert.Equal(1, kept.Slot!.Release().Remaining);
    }

    [Fact]
    public void A_user_override_changes_that_users_limits_only()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, TokensPerWindow = 1000 };
        options.Users["demo"] = new UserLimitOverride { RequestsPerWindow = 1, TokensPerWindow = 100 };
        var limiter = new UserLimiter(options, _time);

        var first = limiter.TryAdmit("demo");
        Assert.Equal((true, 1L, 0L), (first.Allowed, first.Limit, first.Remaining));
        Assert.Equal(100, limiter.TokensRemaining("demo"));
        Assert.Equal(LimitDecision.RateLimited, limiter.TryAdmit("demo").Code);

        var other = limiter.TryAdmit("someone-else");
        Assert.Equal((true, 5L, 4L), (other.Allowed, other.Limit, other.Remaining));
        Assert.Equal(1000, limiter.TokensRemaining("someone-else"));
    }

    [Fact]
    public void A_request_limit_of_zero_blocks_the_user_with_a_429_not_a_crash()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, RequestWindowSeconds = 60 };
        options.Users["blocked"] = new UserLimitOverride { RequestsPerWindow = 0 };
        var limiter = new UserLimiter(options.Validated(), _time);

        var refused = limiter.TryAdmit("blocked");
        Assert.Equal((false, LimitDecision.RateLimited, 0L), (refused.Allowed, refused.Code, refused.Limit));
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter);
        Assert.True(limiter.TryAdmit("someone-else").Allowed);
    }

    [Theory]
    [InlineData("Limits:RequestsPerWindow", "-1", "Limits:RequestsPerWindow")]
    [InlineData("Limits:Users:demo:TokensPerWindow", "-5", "Limits:Users:demo:TokensPerWindow")]
    [InlineData("Limits:RequestWindowSeconds", "0", "Limits:RequestWindowSeconds")]
    public void Limits_that_cannot_work_stop_start_up_naming_the_setting(string key, string value, string named)
    {
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [key] = value }).Build();
        var options = configuration.GetSection(LimitOptions.Section).Get<LimitOptions>()!;

        var e = Assert.Throws<InvalidOperationException>(options.Validated);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void The_default_request_limit_is_the_documented_60()
    {
        Assert.Equal(60, new LimitOptions().RequestsPerWindow); // README: `Limits:RequestsPerWindow` (60)
    }

    [Fact]
    public void The_token_quota_rolls_and_caps_what_is_left()
    {
        var limiter = new UserLimiter(new LimitOptions { TokensPerWindow = 1000, TokenWindowHours = 1 }, _time);
        limiter.TryHold("alice", 700, needed: 1).Hold!.Settle(600);
        _time.Advance(TimeSpan.FromMinutes(30));
        limiter.TryHold("alice", 400, needed: 1).Hold!.Settle(400);
        Assert.Equal(0, limiter.TokensRemaining("alice"));
        var refused = limiter.TryAdmit("alice");
        Assert.False(refused.Allowed);
        Assert.Equal(LimitDecision.QuotaExhausted, refused.Code);
        Assert.Equal(TimeSpan.FromMinutes(30), refused.RetryAfter); // when the first 600 leave the window
        // The quota is named apart; Limit and Remaining stay the request window's (60 a minute, none taken by the refusal).
        Assert.Equal((1000L, 60L, 60L), (refused.QuotaTokens, refused.Limit, refused.Remaining));
        _time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(600, limiter.TokensRemaining("alice"));
        Assert.True(limiter.TryAdmit("alice").Allowed);
    }

    [Fact]
    public void Runs_at_the_same_time_hold_their_budgets_so_they_cannot_spend_the_same_tokens()
    {
        var limiter = new UserLimiter(new LimitOptions { TokensPerWindow = 10_000, TokenWindowHours = 1 }, _time);

        var first = limiter.TryHold("alice", 8_000, needed: 100).Hold!;
        Assert.Equal(8_000, first.Tokens);
        // The second run gets what the first does not hold, not the whole quota again.
        var second = limiter.TryHold("alice", 8_000, needed: 100).Hold!;
        Assert.Equal(2_000, second.Tokens);
        Assert.Equal(0, limiter.TokensRemaining("alice"));
        Assert.Equal(10_000, limiter.TokensRemaining("bob"));

        // Short only because of runs in progress: back in seconds, and the refusal says how much they hold.
        var refused = limiter.TryHold("alice", 8_000, needed: 100);
        Assert.Null(refused.Hold);
        Assert.Equal((0L, 10_000L, UserLimiter.HeldRetryAfter), (refused.Available, refused.HeldByOthers, refused.RetryAfter));

        // Settling counts what a run spent and frees the rest; a second settlement changes nothing.
        first.Settle(3_000);
        first.Settle(8_000);
        Assert.Equal(5_000, limiter.TokensRemaining("alice"));
        second.Settle(0);
        Assert.Equal(7_000, limiter.TokensRemaining("alice"));

        // Short because of spending: back when enough of it leaves the window.
        limiter.TryHold("alice", 7_000, needed: 1).Hold!.Settle(6_950);
        _time.Advance(TimeSpan.FromMinutes(10));
        var spent = limiter.TryHold("alice", 8_000, needed: 100);
        Assert.Equal((50L, 0L, TimeSpan.FromMinutes(50)), (spent.Available, spent.HeldByOthers, spent.RetryAfter));
        _time.Advance(TimeSpan.FromMinutes(50));
        Assert.Equal(8_000, limiter.TryHold("alice", 8_000, needed: 100).Hold!.Tokens);
    }

    [Fact]
    public void Users_with_nothing_left_in_their_windows_are_dropped_but_a_hold_in_progress_is_kept()
    {
        var limiter = new UserLimiter(new LimitOptions { TokensPerWindow = 1000, TokenWindowHours = 1, RequestWindowSeconds = 60 }, _time);
        for (var i = 0; i < 100; i++)
        {
            limiter.TryAdmit($"user-{i}");
            limiter.TryHold($"user-{i}", 500, needed: 1).Hold!.Settle(100);
        }

        var running = limiter.TryHold("long-answer", 500, needed: 1).Hold!;
        Assert.Equal(101, limiter.TrackedUsers);

        _time.Advance(TimeSpan.FromHours(2));
        limiter.TryAdmit("newcomer");
        Assert.Equal(2, limiter.TrackedUsers); // the newcomer, and the run still holding its budget

        // A dropped user starts afresh; the run that outlived its window settles into its own entry.
        Assert.Equal(1000, limiter.TokensRemaining("user-7"));
        running.Settle(300);
        Assert.Equal(700, limiter.TokensRemaining("long-answer"));
    }
}
