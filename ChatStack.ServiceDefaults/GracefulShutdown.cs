using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.Hosting;

/// <summary>How long a service may take to stop after SIGTERM.</summary>
public static class GracefulShutdown
{
    /// <summary>
    /// Cloud Run kills a container 10 s after SIGTERM; .NET's default 30 s would be cut short mid-stop. 8 s leaves
    /// the process time to flush telemetry and exit on its own.
    /// </summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(8);

    /// <summary>Sets the host's shutdown timeout unless <c>shutdownTimeoutSeconds</c> is configured (the host reads that itself).</summary>
    public static TBuilder ConfigureGracefulShutdown<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration["shutdownTimeoutSeconds"]))
        {
            builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = DefaultTimeout);
        }

        return builder;
    }
}
