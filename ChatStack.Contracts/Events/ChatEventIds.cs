using System.Security.Cryptography;
using System.Text;

namespace ChatStack.Contracts.Events;

/// <summary>
/// Deterministic ids: the same fact always gets the same id, so a retried write, a re-published outbox record
/// and a redelivered message all de-duplicate on it (Firestore document id, Pub/Sub payload, BigQuery insertId).
/// </summary>
public static class ChatEventIds
{
    /// <summary>Id of the event of type <paramref name="eventType"/> about message <paramref name="messageId"/> of a session.</summary>
    public static string ForEvent(string sessionId, string messageId, string eventType) => Hash("event", sessionId, messageId, eventType);

    /// <summary>Id of the <paramref name="sequence"/>-th tool call made while answering a message.</summary>
    public static string ForToolInvocation(string sessionId, string messageId, int sequence) =>
        Hash("tool", sessionId, messageId, sequence.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static string Hash(params string[] parts)
    {
        // Length-prefixed so ("ab","c") and ("a","bc") differ.
        var builder = new StringBuilder();
        foreach (var part in parts)
        {
            builder.Append(part.Length).Append(':').Append(part).Append('|');
        }

        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(builder.ToString()));
        return Convert.ToHexStringLower(digest.AsSpan(0, 16));
    }
}
