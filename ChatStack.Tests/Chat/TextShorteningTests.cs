using ChatStack.ChatApi.Agent;

namespace ChatStack.Tests.Chat;

public class TextShorteningTests
{
    [Theory]
    [InlineData(5, "hello", "hello")]
    [InlineData(5, "hello world", "hell…")]
    [InlineData(5, "abc🌊def", "abc…")] // cutting after 'abc' + high half would strand the half
    [InlineData(5, "ab🌊def", "ab🌊…")]
    public void Shortens_to_at_most_the_limit_with_an_ellipsis_never_inside_a_pair(int max, string text, string expected) =>
        Assert.Equal(expected, text.Shorten(max));

    [Fact]
    public void A_tool_result_summary_is_at_most_200_characters_as_the_readme_says()
    {
        var summary = new string('x', 500).Shorten(200);
        Assert.Equal(200, summary.Length);
        Assert.EndsWith("…", summary);
    }
}
