using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ChatStack.ChatApi.Identity;

/// <summary>Token settings (section <c>Identity</c>).</summary>
internal sealed class ChatIdentityOptions
{
    public const string Section = "Identity";

    /// <summary>An OpenID Connect authority (production). When set, tokens are validated against its keys.</summary>
    public string? Authority { get; set; }

    /// <summary>A symmetric signing key (the AppHost generates one for local runs).</summary>
    public string? SigningKey { get; set; }

    public string Issuer { get; set; } = "chatstack-dev";

    public string Audience { get; set; } = "chat-api";

    public double DevTokenLifetimeMinutes { get; set; } = 60;
}

internal static class IdentityExtensions
{
    private const string NoSubject = "The token has no subject claim";

    /// <summary>JWT bearer authentication; the user id is the token's <c>sub</c>, never anything in a body.</summary>
    public static IHostApplicationBuilder AddChatIdentity(this IHostApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(ChatIdentityOptions.Section).Get<ChatIdentityOptions>() ?? new();
        // "Identity__Authority=" binds to "", which is no authority: without this, a configured key would be ignored
        // and every token refused for want of the authority's keys.
        options.Authority = string.IsNullOrWhiteSpace(options.Authority) ? null : options.Authority;
        if (options.Authority is null && !string.IsNullOrWhiteSpace(options.SigningKey))
        {
            // Said once, at start-up, rather than as a bad signature on every correctly signed token.
            SecretKeys.RequireLength(options.SigningKey, "Identity:SigningKey", "HS256");
        }

        if (options.Authority is null && string.IsNullOrWhiteSpace(options.SigningKey))
        {
            if (!builder.Environment.IsDevelopment())
            {
                throw new InvalidOperationException("Set Identity:Authority (an OpenID Connect issuer) or Identity:SigningKey.");
            }

            // Development without the AppHost: a key for this process only; tokens die with it.
            options.SigningKey = SecretKeys.NewForProcess();
        }

        builder.Services.AddSingleton(options);
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(jwt =>
        {
            // Keep "sub" as "sub" rather than the long WS-Federation claim names.
            jwt.MapInboundClaims = false;

            // The user id is the subject: a signed token without one is refused here, as a bad token (401
            // invalid-token), rather than failing every endpoint that asks for the user id (500).
            jwt.Events = new JwtBearerEvents
            {
                OnTokenValidated = context =>
                {
                    if (string.IsNullOrEmpty(context.Principal?.FindFirstValue(JwtRegisteredClaimNames.Sub)))
                    {
                        context.Fail(NoSubject);
                    }

                    return Task.CompletedTask;
                },
                // The handler describes only the token library's own failures; say this one too, for the problem's detail.
                OnChallenge = context =>
                {
                    if (context.AuthenticateFailure?.Message == NoSubject && string.IsNullOrEmpty(context.ErrorDescription))
                    {
                        context.ErrorDescription = NoSubject;
                    }

                    return Task.CompletedTask;
                },
            };
            if (options.Authority is not null)
            {
                jwt.Authority = options.Authority;
                jwt.Audience = options.Audience;
                return;
            }

            jwt.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = options.Issuer,
                ValidAudience = options.Audience,
                IssuerSigningKey = SigningKey(options),
                NameClaimType = JwtRegisteredClaimNames.Sub,
                ClockSkew = TimeSpan.FromSeconds(30),
            };
        });
        builder.Services.AddAuthorization();
        return builder;
    }

    /// <summary>The caller's user id, from the validated token (validation refuses a token without one).</summary>
    public static string UserId(this ClaimsPrincipal user) =>
        user.FindFirstValue(JwtRegisteredClaimNames.Sub) ?? throw new InvalidOperationException("The token has no subject.");

    /// <summary>A token for <paramref name="userId"/>, signed with the local key. Development only.</summary>
    public static string IssueDevelopmentToken(ChatIdentityOptions options, string userId, TimeProvider time)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = options.Issuer,
            Audience = options.Audience,
            Claims = new Dictionary<string, object> { [JwtRegisteredClaimNames.Sub] = userId },
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddMinutes(options.DevTokenLifetimeMinutes),
            SigningCredentials = new SigningCredentials(SigningKey(options), SecurityAlgorithms.HmacSha256),
        });
    }

    private static SymmetricSecurityKey SigningKey(ChatIdentityOptions options) =>
        new(Encoding.UTF8.GetBytes(options.SigningKey!));
}
