using System.Text.Json;
using ChatStack.GoogleCloud.BigQuery;
using Microsoft.AspNetCore.Http.Features;

namespace ChatStack.BigQueryEmulator.Apis;

/// <summary>Every failure leaves in BigQuery's error envelope; unexpected ones are logged as 500 backendError.</summary>
public static class ErrorHandling
{
    public static IApplicationBuilder UseBigQueryErrors(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        // The 10 MB limit is enforced (and answered) by RequestBody; Kestrel's own limit would only reset.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }
        try
        {
            await next(context);
        }
        catch (BigQueryError error)
        {
            await WriteAsync(context, error);
        }
        catch (BadHttpRequestException e)
        {
            await WriteAsync(context, BigQueryError.Invalid(e.Message));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("ChatStack.BigQueryEmulator").LogError(e, "Unhandled emulator error");
            await WriteAsync(context, new BigQueryError(500, "INTERNAL", "backendError", "Internal error in the BigQuery emulator: " + e.Message));
        }
    });

    public static async Task WriteAsync(HttpContext context, BigQueryError error)
    {
        if (context.Response.HasStarted)
        {
            return;
        }
        context.Response.Clear();
        context.Response.StatusCode = error.Code;
        context.Response.ContentType = "application/json; charset=UTF-8";
        await JsonSerializer.SerializeAsync(context.Response.Body, error.ToEnvelope(), Json.Context.ErrorEnvelope, context.RequestAborted);
    }
}
