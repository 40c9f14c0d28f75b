using System.Text;
using ChatStack.ChatApi.Budget;
using ChatStack.Contracts.Events;

namespace ChatStack.Tests.Chat;

public class StoredTextSizeTests
{
    [Theory]
    [InlineData(7, "abc🌊def", "abc🌊")] // 3 + 4 bytes: the pair fits whole
    [InlineData(6, "abc🌊def", "abc")] // never the high half alone
    [InlineData(4, "ééé", "éé")]
    [InlineData(5, "a€b", "a€b")] // 1 + 3 + 1
    [InlineData(4, "a€b", "a€")]
    public void A_delta_is_taken_up_to_the_last_whole_scalar_value_that_fits(int maxBytes, string delta, string taken)
    {
        var size = new StoredTextSize(maxBytes, json: false);
        Assert.Equal(taken.Length, size.Take(delta));
        Assert.Equal(taken != delta, size.Full);
        Assert.Equal(Encoding.UTF8.GetByteCount(taken), size.Bytes);
    }

    [Fact]
    public void A_pair_split_between_deltas_is_sized_whole_with_its_first_half_so_the_second_always_fits()
    {
        // 🌊 is \uD83C\uDF0A: the first delta ends between its halves.
        var size = new StoredTextSize(5, json: false);
        Assert.Equal(2, size.Take("a\uD83C"));
        Assert.Equal(5, size.Bytes); // the high half holds room for the whole pair
        Assert.Equal(1, size.Take("\uDF0Ab"));
        Assert.True(size.Full);
        Assert.Equal(Encoding.UTF8.GetByteCount("a🌊"), size.Bytes);

        // Too little room for the pair: the high half is not taken, so nothing taken is cut later.
        var tight = new StoredTextSize(4, json: false);
        Assert.Equal(1, tight.Take("a\uD83C"));
        Assert.True(tight.Full);
    }

    [Fact]
    public void A_half_alone_is_sized_as_the_replacement_character_it_is_stored_as()
    {
        var size = new StoredTextSize(100, json: false);
        size.Take("a\uD83C");
        size.Take("b");
        Assert.Equal(Encoding.UTF8.GetByteCount("a\uD83Cb"), size.Bytes); // U+FFFD: 3 bytes
        Assert.Equal(Encoding.UTF8.GetByteCount("\uDF0Ax\uD83C"), StoredTextSize.Of("\uDF0Ax\uD83C", json: false));
    }

    [Fact]
    public void The_json_size_is_what_a_chat_event_takes_for_every_character()
    {
        var empty = Serialized("").Length;
        for (var c = 0; c <= 0xFFFF; c++)
        {
            var text = ((char)c).ToString();
            Assert.True(Serialized(text).Length - empty == StoredTextSize.Of(text, json: true), $"U+{c:X4}");
        }

        const string Mixed = "a🌊\"<\n\u0001é\uD83C";
        Assert.Equal(Serialized(Mixed).Length - empty, StoredTextSize.Of(Mixed, json: true));
    }

    [Theory]
    [InlineData(10, "short", "short")]
    [InlineData(8, "abcdefghijk", "abcde…")] // 5 + 3 bytes
    [InlineData(8, "abc🌊def", "abc…")] // the pair and the ellipsis do not both fit
    [InlineData(9, "abc🌊def", "abc…")]
    [InlineData(10, "abc🌊defg", "abc🌊…")]
    public void Shortens_to_at_most_the_bytes_with_an_ellipsis_at_a_scalar_boundary(int maxBytes, string text, string expected)
    {
        var shortened = StoredTextSize.Shorten(text, maxBytes);
        Assert.Equal(expected, shortened);
        Assert.True(Encoding.UTF8.GetByteCount(shortened) <= maxBytes);
    }

    private static byte[] Serialized(string content) => ChatEventMessages.Serialize(new ChatEvent
    {
        EventId = "e",
        EventType = "assistant_message",
        SessionId = "s",
        UserId = "u",
        Content = content,
        EventTimestamp = DateTimeOffset.UnixEpoch,
    });
}
