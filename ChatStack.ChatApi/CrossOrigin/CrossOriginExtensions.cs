namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Cross-origin access for frontends served from elsewhere (a dev server on another port, an app on its own domain).
/// Off unless <c>Cors:AllowedOrigins</c> names origins: the bundled page is same-origin and needs none. Tokens travel
/// in the Authorization header, never in cookies, so no credentials are allowed and <c>*</c> is safe to use.
/// </summary>
internal static class CrossOriginExtensions
{
    public const string Section = "Cors:AllowedOrigins";

    // What a browser may read from responses besides the safelisted ones: the stream's ids, limits, paging.
    private static readonly string[] Exposed =
        ["X-Session-Id", "X-Stream-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Link"];

    public static IHostApplicationBuilder AddChatCrossOrigin(this IHostApplicationBuilder builder)
    {
        // A list (Cors__AllowedOrigins__0=…), or one comma-separated value (Cors__AllowedOrigins=a,b) as a deployment
        // parameter gives it. The list wins: appsettings.json's empty [] reads as an empty value beside it.
        var section = builder.Configuration.GetSection(Section);
        var origins = section.GetChildren().Any()
            ? section.Get<string[]>() ?? []
            : (section.Value ?? "").Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var origin in origins)
        {
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                && uri.AbsolutePath == "/" && string.IsNullOrEmpty(uri.Query) && !origin.EndsWith('/')))
            {
                throw new InvalidOperationException(
                    $"{Section} holds '{origin}', which is not an origin: write scheme://host[:port] (for example http://localhost:3000), no path or trailing slash, or * for any.");
            }
        }

        builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy =>
        {
            if (origins.Contains("*"))
            {
                policy.AllowAnyOrigin();
            }
            else
            {
                policy.WithOrigins(origins);
            }

            policy.WithMethods("GET", "POST", "PATCH", "DELETE")
                .WithHeaders("Authorization", "Content-Type", "Accept", "Last-Event-ID")
                .WithExposedHeaders(Exposed)
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10));
        }));
        return builder;
    }
}
