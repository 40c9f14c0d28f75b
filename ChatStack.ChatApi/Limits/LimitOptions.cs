namespace ChatStack.ChatApi.Limits;

/// <summary>Per-user limits (section <c>Limits</c>).</summary>
internal sealed class LimitOptions
{
    public const string Section = "Limits";

    /// <summary>Chat requests a user may start per <see cref="RequestWindowSeconds"/>; 0 refuses every request (a blocked account).</summary>
    public int RequestsPerWindow { get; set; } = 60;

    public double RequestWindowSeconds { get; set; } = 60;

    /// <summary>Tokens a user may spend over the rolling <see cref="TokenWindowHours"/>.</summary>
    public long TokensPerWindow { get; set; } = 500_000;

    public double TokenWindowHours { get; set; } = 24;

    /// <summary>
    /// Where the windows are kept: <see cref="LimitStore.Shared"/> (the default when sessions are in Firestore) keeps each
    /// user's in one Firestore document, so every instance of the API enforces the same limits; <see cref="LimitStore.Memory"/>
    /// keeps them per instance (the only choice with Firestore writes off).
    /// </summary>
    public LimitStore Store { get; set; } = LimitStore.Shared;

    /// <summary>
    /// How long a run's hold on the quota lasts if the instance running it dies before settling it. Longer than any run:
    /// a run ends with its request, and Cloud Run cuts requests at an hour.
    /// </summary>
    public double HoldLifetimeMinutes { get; set; } = 90;

    public TimeSpan RequestWindow => TimeSpan.FromSeconds(RequestWindowSeconds);

    public TimeSpan TokenWindow => TimeSpan.FromHours(TokenWindowHours);

    public TimeSpan HoldLifetime => TimeSpan.FromMinutes(HoldLifetimeMinutes);

    /// <summary>Limits for particular user ids (<c>Limits:Users:{userId}:RequestsPerWindow</c>), e.g. a tighter one for a shared demo account.</summary>
    public Dictionary<string, UserLimitOverride> Users { get; set; } = new(StringComparer.Ordinal);

    public int RequestsFor(string userId) => Users.GetValueOrDefault(userId)?.RequestsPerWindow ?? RequestsPerWindow;

    public long TokensFor(string userId) => Users.GetValueOrDefault(userId)?.TokensPerWindow ?? TokensPerWindow;

    /// <summary>Refuses settings that would fail on the first request instead of at start-up.</summary>
    public LimitOptions Validated()
    {
        var errors = new List<string>();
        if (RequestWindowSeconds is not > 0 || TokenWindowHours is not > 0 || HoldLifetimeMinutes is not > 0)
        {
            errors.Add($"{Section}:RequestWindowSeconds, {Section}:TokenWindowHours and {Section}:HoldLifetimeMinutes must be positive");
        }
        foreach (var (user, requests, tokens) in Users.Select(u => ($"{Section}:Users:{u.Key}:", u.Value.RequestsPerWindow, u.Value.TokensPerWindow))
            .Prepend(($"{Section}:", RequestsPerWindow, TokensPerWindow)))
        {
            if (requests < 0 || tokens < 0)
            {
                errors.Add($"{user}RequestsPerWindow and {user}TokensPerWindow must not be negative (0 blocks)");
            }
        }
        return errors.Count == 0 ? this : throw new InvalidOperationException($"Invalid limits: {string.Join("; ", errors)}.");
    }
}

/// <summary>One user's limits; what is not set comes from the defaults. The windows are the same for everyone.</summary>
internal sealed class UserLimitOverride
{
    public int? RequestsPerWindow { get; set; }

    public long? TokensPerWindow { get; set; }
}


/// <summary>Where the per-user windows are kept (<c>Limits:Store</c>).</summary>
internal enum LimitStore
{
    /// <summary>In Firestore, one document per user, shared by every instance (falls back to memory when Firestore writes are off).</summary>
    Shared,

    /// <summary>In this instance's memory: with several instances, each enforces the limits on its own.</summary>
    Memory,
}
