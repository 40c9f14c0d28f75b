using System.Text.Json;
using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Apis;
using ChatStack.ChatApi.Budget;
using ChatStack.ChatApi.DualWrite;
using ChatStack.ChatApi.Identity;
using ChatStack.ChatApi.Limits;
using ChatStack.ChatApi.Page;
using ChatStack.ChatApi.Sessions;
using ChatStack.ChatApi.Streaming;
using ChatStack.ChatApi.Telemetry;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

internal static class ChatApiExtensions
{
    /// <summary>Everything the chat API needs, one capability at a time.</summary>
    public static IHostApplicationBuilder AddChatApi(this IHostApplicationBuilder builder)
    {
        builder.AddChatStorage();
        builder.AddChatIdentity();
        builder.AddChatCrossOrigin();

        var services = builder.Services;
        services.AddProblemDetails();
        services.AddOpenApi(openApi => openApi.AddDocumentTransformer<BearerSecuritySchemeTransformer>());
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        services.AddSingleton(TimeProvider.System);

        services.AddOptions<ChatOptions>().Bind(builder.Configuration.GetSection(ChatOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ChatOptions>, ChatOptionsValidation>();
        var limits = (builder.Configuration.GetSection(LimitOptions.Section).Get<LimitOptions>() ?? new LimitOptions()).Validated();
        services.AddSingleton(limits);
        // Shared through Firestore whenever sessions are there: every instance then enforces the same windows.
        services.TryAddSingleton<IUserUsageStore>(sp => limits.Store == LimitStore.Shared && sp.GetRequiredService<DualWriteOptions>().FirestoreWrite
            ? ActivatorUtilities.CreateInstance<FirestoreUserUsageStore>(sp)
            : ActivatorUtilities.CreateInstance<MemoryUserUsageStore>(sp));
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<TokenCounterProvider>();
        services.AddSingleton<ITokenCounterProvider>(sp => sp.GetRequiredService<TokenCounterProvider>());
        services.AddHostedService<TokenizerWarmup>();
        services.AddSingleton<ChatCompletionServices>();
        services.AddSingleton<ChatAgent>();
        services.AddSingleton<UserLimiter>();
        services.AddSingleton<ChatMetrics>();
        services.AddSingleton(ContentCaptureOptions.From(builder.Configuration));
        services.AddSingleton<ChatRunTracker>();
        services.AddHostedService(sp => sp.GetRequiredService<ChatRunTracker>());
        services.AddSingleton(sp => new ChatStreamRegistry(sp.GetRequiredService<TimeProvider>())
        {
            ResumeWindow = TimeSpan.FromSeconds(sp.GetRequiredService<IOptions<ChatOptions>>().Value.ResumeWindowSeconds),
            ReconnectGrace = TimeSpan.FromSeconds(sp.GetRequiredService<IOptions<ChatOptions>>().Value.ReconnectGraceSeconds),
        });
        return builder;
    }

    /// <summary>Middleware and endpoints: problem details for every error, the page, authentication, the API, OpenAPI.</summary>
    public static WebApplication MapChatApi(this WebApplication app)
    {
        // Fail at start-up, not on the first request, when the model configuration is wrong.
        _ = app.Services.GetRequiredService<ModelCatalog>();

        // Problem details whatever the client accepts: an SSE client (Accept: text/event-stream) must still get a
        // readable error instead of the plain-text fallback the default writers choose for it.
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
            ExceptionHandler = context => Problems.ForException(context).ExecuteAsync(context),
            // A store refusal is logged once, by its problem, with Firestore's status and words; the stack trace of a
            // gRPC call refused for good would add nothing but a second entry.
            SuppressDiagnosticsCallback = handled => handled.Exception is ChatStoreRefusedException,
        });
        app.UseStatusCodePages(pages => Problems.ForStatus(pages.HttpContext, pages.HttpContext.Response.StatusCode).ExecuteAsync(pages.HttpContext));
        app.UseChatPage();
        // Before authentication: a browser's preflight carries no token and must not meet a 401.
        app.UseCors();
        app.UseAuthentication();
        app.UseAuthorization();

        app.MapOpenApi().AllowAnonymous();
        app.MapChatEndpoints();
        if (app.Environment.IsDevelopment())
        {
            app.MapDevelopmentTokenApi();
        }

        return app;
    }
}
