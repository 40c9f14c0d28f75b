using System.Security.Cryptography;
using System.Text;

namespace ChatStack.ChatApi.Identity;

/// <summary>The API's symmetric secrets (the token signing key, the content hash key): one rule for how long they must be.</summary>
internal static class SecretKeys
{
    /// <summary>256 bits: HS256 refuses shorter keys at every validation, and a shorter hash key is the easier thing to guess.</summary>
    public const int MinBytes = 32;

    /// <summary>Stops start-up when a configured key is too short, naming the setting and what needs the length.</summary>
    public static void RequireLength(string key, string setting, string purpose)
    {
        var bytes = Encoding.UTF8.GetByteCount(key);
        if (bytes < MinBytes)
        {
            throw new InvalidOperationException($"{setting} is {bytes} bytes; {purpose} needs at least {MinBytes} (e.g. `openssl rand -base64 48`).");
        }
    }

    /// <summary>A key for this process only (Development without the AppHost): what it protects dies with the process.</summary>
    public static string NewForProcess() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
}
