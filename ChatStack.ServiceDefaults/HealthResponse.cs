using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The body of <c>/health</c> on the local stack: the status line ASP.NET Core writes, then one line per check that
/// is not healthy with what it said, so the AppHost's dashboard can show why a service is Degraded or Unhealthy.
/// </summary>
public static class HealthResponse
{
    /// <summary>
    /// Set (to <c>true</c>) by the AppHost in run mode only: deployed, <c>/health</c> is public and the reasons (error
    /// messages of Google APIs among them) stay out of it.
    /// </summary>
    public const string IncludeDescriptionsKey = "Health:IncludeDescriptions";

    /// <summary>Status codes are the middleware's (200 for Healthy and Degraded, 503 for Unhealthy): only the body changes.</summary>
    public static Task WriteWithDescriptions(HttpContext context, HealthReport report)
    {
        var body = new StringBuilder(report.Status.ToString());
        foreach (var (name, entry) in report.Entries.Where(e => e.Value.Status != HealthStatus.Healthy).OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            var reason = entry.Description ?? entry.Exception?.Message ?? "";
            // One line per check, whatever the reason holds.
            body.Append('\n').Append(name).Append(": ").Append(entry.Status).Append(": ").Append(reason.ReplaceLineEndings(" "));
        }

        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(body.ToString(), context.RequestAborted);
    }
}
