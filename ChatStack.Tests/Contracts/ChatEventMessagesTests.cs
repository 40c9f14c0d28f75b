using System.Text;
using ChatStack.Contracts.Events;

namespace ChatStack.Tests.Contracts;

public class ChatEventMessagesTests
{
    private static readonly Dictionary<string, string> AssistantAttributes = new() { ["event_type"] = ChatEventTypes.AssistantMessage };

    [Theory]
    [InlineData("not json", "not a assistant_message JSON document")]
    [InlineData("""{"event_id":"e1","event_type":"assistant_message","session_id":"s","user_id":"u","event_timestamp":"2026-11-26T10:00:00Z"}""", "missing schema_version")]
    [InlineData("""{"schema_version":7,"event_id":"e1","event_type":"assistant_message","session_id":"s","user_id":"u","event_timestamp":"2026-11-26T10:00:00Z"}""", "unknown schema_version 7")]
    [InlineData("""{"schema_version":1,"event_id":"","event_type":"assistant_message","session_id":"s","user_id":"u","event_timestamp":"2026-11-26T10:00:00Z"}""", "missing event_id")]
    public void Messages_that_cannot_be_stored_say_why(string json, string reason)
    {
        Assert.False(ChatEventMessages.TryParse(Encoding.UTF8.GetBytes(json), AssistantAttributes, out var parsed, out var actual));
        Assert.Null(parsed);
        Assert.StartsWith(reason, actual);
    }

    [Fact]
    public void A_serialized_event_parses_back_with_its_attributes()
    {
        var original = new ChatEvent
        {
            EventId = ChatEventIds.ForEvent("s", "m", ChatEventTypes.AssistantMessage),
            EventType = ChatEventTypes.AssistantMessage,
            SessionId = "s",
            UserId = "u",
            TotalTokens = 42,
            EventTimestamp = new DateTimeOffset(2026, 11, 26, 10, 0, 0, TimeSpan.Zero),
        };
        var attributes = ChatEventMessages.Attributes(original, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

        Assert.True(ChatEventMessages.TryParse(ChatEventMessages.Serialize(original), attributes, out var parsed, out _));
        Assert.Equal(original, parsed);
        Assert.Equal("1", attributes["schema_version"]);
        Assert.Equal(ChatEventIds.ForEvent("s", "m", ChatEventTypes.AssistantMessage), original.EventId);
    }
}
