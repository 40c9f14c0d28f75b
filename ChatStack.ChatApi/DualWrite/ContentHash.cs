using System.Security.Cryptography;
using System.Text;
using ChatStack.ChatApi.Identity;
using Microsoft.Extensions.Configuration;

namespace ChatStack.ChatApi.DualWrite;

/// <summary>
/// What a chat event carries in place of the message text (<c>content_sha256</c>): HMAC-SHA256 of the text's UTF-8
/// bytes under a key only the chat API holds (<c>DualWrite:ContentHashKey</c>, its UTF-8 bytes), in lowercase hex.
/// Equal texts give equal values within a deployment, so repeats can still be counted; but a plain hash of "yes", a
/// name or a 9-digit number is recovered from the warehouse by trying candidates, and a keyed one is not without the
/// key. The key is never logged, and this class does not print it.
/// </summary>
internal sealed class ContentHash
{
    /// <summary>The setting (environment <c>DualWrite__ContentHashKey</c>; deployed, the secret <c>chat-api-content-hash-key</c>).</summary>
    public const string Setting = "DualWrite:ContentHashKey";

    private readonly byte[] _key;

    public ContentHash(string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        SecretKeys.RequireLength(key, Setting, "the content hash");
        _key = Encoding.UTF8.GetBytes(key);
    }

    /// <summary>Lowercase hex HMAC-SHA256 of <paramref name="text"/>'s UTF-8 bytes.</summary>
    public string Of(string text) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(text)));

    public override string ToString() => nameof(ContentHash);

    /// <summary>
    /// The configured key; a key that is set must be long enough. None is an error outside Development whenever chat
    /// events are published (<paramref name="required"/>), with content capture on too: one rule, and values that stay
    /// comparable when capture is turned off again.
    /// </summary>
    public static ContentHash From(IConfiguration configuration, bool isDevelopment, bool required)
    {
        var key = configuration[Setting];
        if (!string.IsNullOrWhiteSpace(key))
        {
            return new ContentHash(key);
        }

        if (required && !isDevelopment)
        {
            throw new InvalidOperationException(
                $"Set {Setting} (environment DualWrite__ContentHashKey), a secret of at least {SecretKeys.MinBytes} bytes (e.g. `openssl rand -base64 48`): " +
                "chat events carry a keyed hash of each message instead of its text. Deployed, it is the secret chat-api-content-hash-key.");
        }

        // Development without the AppHost (which generates one), or no events at all: a key for this process only. Its
        // values match nothing another run wrote, which a developer's throwaway data can live with, and no one knows it.
        return new ContentHash(SecretKeys.NewForProcess());
    }
}
