using Microsoft.Extensions.Configuration;
using ChatStack.ChatApi.Limits;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>The limiter's rules, the same over either store: this instance's memory, or Firestore shared by every instance.</summary>
public abstract class UserLimiterTests
{
    private protected readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private protected abstract IUserUsageStore Store(LimitOptions options);

    private protected UserLimiter Limiter(LimitOptions options) => new(options, Store(options), _time, NullLogger<UserLimiter>.Instance);

    [Fact]
    public async Task Requests_over_the_rolling_window_are_refused_with_a_retry_time_then_admitted_again()
    {
        var limiter = Limiter(new LimitOptions { RequestsPerWindow = 2, RequestWindowSeconds = 60 });
        Assert.Equal(1, (await limiter.TryAdmitAsync("alice", default)).Remaining);
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.True((await limiter.TryAdmitAsync("alice", default)).Allowed);
        var refused = await limiter.TryAdmitAsync("alice", default);
        Assert.False(refused.Allowed);
        Assert.Equal(LimitDecision.RateLimited, refused.Code);
        Assert.Equal(TimeSpan.FromSeconds(40), refused.RetryAfter);
        Assert.True((await limiter.TryAdmitAsync("bob", default)).Allowed); // per user
        _time.Advance(TimeSpan.FromSeconds(40));
        Assert.True((await limiter.TryAdmitAsync("alice", default)).Allowed);
    }

    [Fact]
    public async Task A_slot_given_back_frees_its_own_place_once_and_none_after_it_left_the_window()
    {
        var limiter = Limiter(new LimitOptions { RequestsPerWindow = 2, RequestWindowSeconds = 60 });
        var kept = await limiter.TryAdmitAsync("alice", default);
        _time.Advance(TimeSpan.FromSeconds(20));
        var failed = await limiter.TryAdmitAsync("alice", default);

        var standing = (await failed.Slot!.ReleaseAsync())!;
        Assert.Equal((2L, 1L, TimeSpan.FromSeconds(40)), (standing.Limit, standing.Remaining, standing.Reset)); // the kept one still resets the window
        Assert.Equal(1, (await failed.Slot.ReleaseAsync())!.Remaining); // twice is once
        Assert.True((await limiter.TryAdmitAsync("alice", default)).Allowed);
        Assert.False((await limiter.TryAdmitAsync("alice", default)).Allowed);

        // Gone from the window by itself: giving it back now frees nothing that a later request took.
        _time.Advance(TimeSpan.FromSeconds(41));
        Assert.Equal(1, (await kept.Slot!.ReleaseAsync())!.Remaining);
    }

    [Fact]
    public async Task A_user_override_changes_that_users_limits_only()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, TokensPerWindow = 1000 };
        options.Users["demo"] = new UserLimitOverride { RequestsPerWindow = 1, TokensPerWindow = 100 };
        var limiter = Limiter(options);

        var first = await limiter.TryAdmitAsync("demo", default);
        Assert.Equal((true, 1L, 0L), (first.Allowed, first.Limit, first.Remaining));
        Assert.Equal(100, (await limiter.TokensRemainingAsync("demo", default)));
        Assert.Equal(LimitDecision.RateLimited, (await limiter.TryAdmitAsync("demo", default)).Code);

        var other = await limiter.TryAdmitAsync("someone-else", default);
        Assert.Equal((true, 5L, 4L), (other.Allowed, other.Limit, other.Remaining));
        Assert.Equal(1000, (await limiter.TokensRemainingAsync("someone-else", default)));
    }

    [Fact]
    public async Task A_request_limit_of_zero_blocks_the_user_with_a_429_not_a_crash()
    {
        var options = new LimitOptions { RequestsPerWindow = 5, RequestWindowSeconds = 60 };
        options.Users["blocked"] = new UserLimitOverride { RequestsPerWindow = 0 };
        var limiter = Limiter(options.Validated());

        var refused = await limiter.TryAdmitAsync("blocked", default);
        Assert.Equal((false, LimitDecision.RateLimited, 0L), (refused.Allowed, refused.Code, refused.Limit));
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter);
        Assert.True((await limiter.TryAdmitAsync("someone-else", default)).Allowed);
    }

    [Fact]
    public async Task The_token_quota_rolls_and_caps_what_is_left()
    {
        var limiter = Limiter(new LimitOptions { TokensPerWindow = 1000, TokenWindowHours = 1 });
        await (await limiter.TryHoldAsync("alice", 700, needed: 1, default)).Hold!.SettleAsync(600);
        _time.Advance(TimeSpan.FromMinutes(30));
        await (await limiter.TryHoldAsync("alice", 400, needed: 1, default)).Hold!.SettleAsync(400);
        Assert.Equal(0, (await limiter.TokensRemainingAsync("alice", default)));
        var refused = await limiter.TryAdmitAsync("alice", default);
        Assert.False(refused.Allowed);
        Assert.Equal(LimitDecision.QuotaExhausted, refused.Code);
        Assert.Equal(TimeSpan.FromMinutes(30), refused.RetryAfter); // when the first 600 leave the window
        // The quota is named apart; Limit and Remaining stay the request window's (60 a minute, none taken by the refusal).
        Assert.Equal((1000L, 60L, 60L), (refused.QuotaTokens, refused.Limit, refused.Remaining));
        _time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(600, (await limiter.TokensRemainingAsync("alice", default)));
        Assert.True((await limiter.TryAdmitAsync("alice", default)).Allowed);
    }

    [Fact]
    public async Task Admitting_with_a_hold_counts_the_request_and_holds_the_budget_in_one_step()
    {
        var limiter = Limiter(new LimitOptions { RequestsPerWindow = 2, TokensPerWindow = 1000 });

        var (admitted, quota) = await limiter.TryAdmitAndHoldAsync("alice", 700, needed: 10, default);
        Assert.Equal((true, 1L), (admitted.Allowed, admitted.Remaining));
        Assert.Equal(700, quota!.Hold!.Tokens);

        // Admitted, but the quota is held: refused for it, and the request keeps its place in the window.
        var (second, short1) = await limiter.TryAdmitAndHoldAsync("alice", 700, needed: 400, default);
        Assert.Equal((true, 0L), (second.Allowed, second.Remaining));
        Assert.Equal((300L, 700L, UserLimiter.HeldRetryAfter), (short1!.Available, short1.HeldByOthers, short1.RetryAfter));
        Assert.Null(short1.Hold);

        // Refused for the rate: nothing is held.
        var (third, none) = await limiter.TryAdmitAndHoldAsync("alice", 100, needed: 10, default);
        Assert.Equal(LimitDecision.RateLimited, third.Code);
        Assert.Null(none);
        Assert.Equal(300, await limiter.TokensRemainingAsync("alice", default));

        await quota.Hold.SettleAsync(250);
        Assert.Equal(750, await limiter.TokensRemainingAsync("alice", default));
    }

    [Fact]
    public async Task Runs_at_the_same_time_hold_their_budgets_so_they_cannot_spend_the_same_tokens()
    {
        var limiter = Limiter(new LimitOptions { TokensPerWindow = 10_000, TokenWindowHours = 1 });

        var first = (await limiter.TryHoldAsync("alice", 8_000, needed: 100, default)).Hold!;
        Assert.Equal(8_000, first.Tokens);
        // The second run gets what the first does not hold, not the whole quota again.
        var second = (await limiter.TryHoldAsync("alice", 8_000, needed: 100, default)).Hold!;
        Assert.Equal(2_000, second.Tokens);
        Assert.Equal(0, (await limiter.TokensRemainingAsync("alice", default)));
        Assert.Equal(10_000, (await limiter.TokensRemainingAsync("bob", default)));

        // Short only because of runs in progress: back in seconds, and the refusal says how much they hold.
        var refused = await limiter.TryHoldAsync("alice", 8_000, needed: 100, default);
        Assert.Null(refused.Hold);
        Assert.Equal((0L, 10_000L, UserLimiter.HeldRetryAfter), (refused.Available, refused.HeldByOthers, refused.RetryAfter));

        // Settling counts what a run spent and frees the rest; a second settlement changes nothing.
        await first.SettleAsync(3_000);
        await first.SettleAsync(8_000);
        Assert.Equal(5_000, (await limiter.TokensRemainingAsync("alice", default)));
        await second.SettleAsync(0);
        Assert.Equal(7_000, (await limiter.TokensRemainingAsync("alice", default)));

        // Short because of spending: back when enough of it leaves the window.
        await (await limiter.TryHoldAsync("alice", 7_000, needed: 1, default)).Hold!.SettleAsync(6_950);
        _time.Advance(TimeSpan.FromMinutes(10));
        var spent = await limiter.TryHoldAsync("alice", 8_000, needed: 100, default);
        Assert.Equal((50L, 0L, TimeSpan.FromMinutes(50)), (spent.Available, spent.HeldByOthers, spent.RetryAfter));
        _time.Advance(TimeSpan.FromMinutes(50));
        Assert.Equal(8_000, (await limiter.TryHoldAsync("alice", 8_000, needed: 100, default)).Hold!.Tokens);
    }
}

public class MemoryUserLimiterTests : UserLimiterTests
{
    private MemoryUserUsageStore? _store;

    private protected override IUserUsageStore Store(LimitOptions options) => _store = new MemoryUserUsageStore(options, _time);

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
    public async Task Users_with_nothing_left_in_their_windows_are_dropped_but_a_hold_in_progress_is_kept()
    {
        var limiter = Limiter(new LimitOptions { TokensPerWindow = 1000, TokenWindowHours = 1, RequestWindowSeconds = 60 });
        for (var i = 0; i < 100; i++)
        {
            await limiter.TryAdmitAsync($"user-{i}", default);
            await (await limiter.TryHoldAsync($"user-{i}", 500, needed: 1, default)).Hold!.SettleAsync(100);
        }

        var running = (await limiter.TryHoldAsync("long-answer", 500, needed: 1, default)).Hold!;
        Assert.Equal(101, _store!.TrackedUsers);

        _time.Advance(TimeSpan.FromHours(2));
        await limiter.TryAdmitAsync("newcomer", default);
        Assert.Equal(2, _store!.TrackedUsers); // the newcomer, and the run still holding its budget

        // A dropped user starts afresh; the run that outlived its window settles into its own entry.
        Assert.Equal(1000, (await limiter.TokensRemainingAsync("user-7", default)));
        await running.SettleAsync(300);
        Assert.Equal(700, (await limiter.TokensRemainingAsync("long-answer", default)));
    }
}
