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
    public void The_token_quota_rolls_and_caps_what_is_left()
    {
        var limiter = new UserLimiter(new LimitOptions { TokensPerWindow = 1000, TokenWindowHours = 1 }, _time);
        limiter.RecordTokens("alice", 600);
        _time.Advance(TimeSpan.FromMinutes(30));
        limiter.RecordTokens("alice", 400);
        Assert.Equal(0, limiter.TokensRemaining("alice"));
        var refused = limiter.TryAdmit("alice");
        Assert.False(refused.Allowed);
        Assert.Equal(LimitDecision.QuotaExhausted, refused.Code);
        Assert.Equal(TimeSpan.FromMinutes(30), refused.RetryAfter); // when the first 600 leave the window
        _time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(600, limiter.TokensRemaining("alice"));
        Assert.True(limiter.TryAdmit("alice").Allowed);
    }
}
