using System.Net;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>
/// The AppHost's health check of a ChatStack service: GET on its <c>/health</c>, read as ASP.NET Core's health
/// endpoint answers. Aspire's <c>WithHttpHealthCheck</c> only compares the status code, and <c>/health</c> says
/// Degraded with a 200 (so Cloud Run keeps a worker that is riding out a BigQuery outage): the dashboard showed it
/// Healthy. This one reads the body's status line too, and the lines after it as the reason.
/// </summary>
internal sealed class ServiceHealthCheck(EndpointReference endpoint, string path, IHttpClientFactory clients) : IHealthCheck
{
    /// <summary>The named client the checks use; its request logging is off, as for Aspire's own HTTP checks.</summary>
    internal const string HttpClientName = "chatstack-service-health";

    /// <summary>More than a status line and a few reasons; a body past it is not a health report.</summary>
    private const int MaxBodyChars = 4096;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!endpoint.Exists || !endpoint.IsAllocated)
        {
            return HealthCheckResult.Unhealthy($"Endpoint '{endpoint.EndpointName}' of '{endpoint.Resource.Name}' has no address yet.");
        }

        var uri = new Uri(new Uri(endpoint.Url), path);
        try
        {
            using var response = await clients.CreateClient(HttpClientName).GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var (status, reasons) = await ReadAsync(response.Content, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return HealthCheckResult.Unhealthy(Describe($"GET {uri} answered {(int)response.StatusCode} {status}".TrimEnd(), reasons));
            }

            return status switch
            {
                nameof(HealthStatus.Degraded) => HealthCheckResult.Degraded(Describe($"GET {uri} answered Degraded", reasons)),
                nameof(HealthStatus.Unhealthy) => HealthCheckResult.Unhealthy(Describe($"GET {uri} answered 200 Unhealthy", reasons)),
                // "Healthy", or a body that is not a health report: a 200 is all Aspire's check asked for.
                _ => HealthCheckResult.Healthy(),
            };
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"GET {uri} failed: {e.Message}", e);
        }
    }

    /// <summary>The status line, and the reasons a service that writes them puts on the lines after it.</summary>
    private static async Task<(string Status, string? Reasons)> ReadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(await content.ReadAsStreamAsync(cancellationToken));
        var buffer = new char[MaxBodyChars];
        var read = await reader.ReadBlockAsync(buffer, cancellationToken);
        var lines = new string(buffer, 0, read).Split('\n', 2, StringSplitOptions.TrimEntries);
        return (lines[0], lines.Length > 1 && lines[1].Length > 0 ? lines[1] : null);
    }

    private static string Describe(string answer, string? reasons) => reasons is null ? answer : $"{answer}: {reasons}";
}

/// <summary>Gives ChatStack's services the health check the dashboard needs.</summary>
public static class ServiceHealthCheckExtensions
{
    /// <summary>
    /// The setting that makes a service write, after the status line of <c>/health</c>, what each check that is not
    /// healthy said (ChatStack.ServiceDefaults reads it as <c>Health:IncludeDescriptions</c>). Off by default: deployed,
    /// <c>/health</c> is public and reveals nothing but status.
    /// </summary>
    public const string IncludeDescriptionsVariable = "Health__IncludeDescriptions";

    /// <summary>
    /// The resource's health, as its ASP.NET Core health endpoint <paramref name="path"/> reports it: Healthy, Degraded
    /// (a 200 that says so) or Unhealthy (any other status, or no answer), with the service's reasons when it gives
    /// them. Use it instead of <c>WithHttpHealthCheck</c>, which shows a Degraded service as Healthy.
    /// </summary>
    /// <remarks>
    /// <c>WaitFor</c> waits for Healthy, so a resource that others wait for would hold them back while Degraded.
    /// </remarks>
    public static IResourceBuilder<T> WithServiceHealthCheck<T>(this IResourceBuilder<T> builder, string path = "/health", string endpointName = "http")
        where T : IResourceWithEndpoints, IResourceWithEnvironment
    {
        var key = $"{builder.Resource.Name}_{endpointName}_{path}_status";
        var endpoint = builder.Resource.GetEndpoint(endpointName);
        var services = builder.ApplicationBuilder.Services;
        services.AddHttpClient(ServiceHealthCheck.HttpClientName);
        services.AddLogging(logging => logging
            .AddFilter($"System.Net.Http.HttpClient.{ServiceHealthCheck.HttpClientName}.LogicalHandler", LogLevel.None)
            .AddFilter($"System.Net.Http.HttpClient.{ServiceHealthCheck.HttpClientName}.ClientHandler", LogLevel.None));
        // The endpoint is read at each check: its address exists only once the resource has been allocated one.
        services.AddHealthChecks().Add(new HealthCheckRegistration(key,
            sp => new ServiceHealthCheck(endpoint, path, sp.GetRequiredService<IHttpClientFactory>()),
            failureStatus: HealthStatus.Unhealthy, tags: null, timeout: TimeSpan.FromSeconds(10)));

        // Only on the local stack: a published manifest must not turn the reasons on for Cloud Run.
        if (builder.ApplicationBuilder.ExecutionContext.IsRunMode)
        {
            builder.WithEnvironment(IncludeDescriptionsVariable, "true");
        }

        return builder.WithHealthCheck(key);
    }
}
