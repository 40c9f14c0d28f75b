namespace ChatStack.ChatApi.Page;

internal static class ChatPageExtensions
{
    /// <summary>
    /// Serves the chat page (wwwroot: plain HTML, CSS and JS modules, no build step) at <c>/</c>, anonymously;
    /// every <c>/api</c> call it makes still needs a bearer token.
    /// </summary>
    public static WebApplication UseChatPage(this WebApplication app)
    {
        app.UseDefaultFiles();
        app.UseStaticFiles(new StaticFileOptions
        {
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                // Revalidate on every load (ETag), so a new deployment's modules are never mixed with cached ones.
                headers.CacheControl = "no-cache";
                headers.XContentTypeOptions = "nosniff";
                if (context.File.Name.EndsWith(".html", StringComparison.OrdinalIgnoreCase))
                {
                    // Defence in depth for model output: no inline script, nothing loaded from elsewhere.
                    headers.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                        + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
                    headers["Referrer-Policy"] = "no-referrer";
                }
            },
        });
        return app;
    }
}
