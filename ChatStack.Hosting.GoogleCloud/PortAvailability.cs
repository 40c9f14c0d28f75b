using System.Net;
using System.Net.Sockets;
using Aspire.Hosting;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>
/// Fixed ports that are taken make DCP fail one resource deep in its logs while the rest starts; checking them
/// up front turns that into one message that names the fix.
/// </summary>
public static class PortAvailability
{
    // The AppHost's own listeners, set by its launch profile.
    private static readonly string[] AppHostUrlKeys =
    [
        "ASPNETCORE_URLS",
        "ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL",
        "ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL",
        "ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL",
    ];

    /// <summary>Fails with a clear message when a fixed port of the AppHost (dashboard, OTLP, resource service) is taken.</summary>
    public static IDistributedApplicationBuilder EnsureAppHostPortsAvailable(this IDistributedApplicationBuilder builder)
    {
        if (!builder.ExecutionContext.IsRunMode)
        {
            return builder;
        }

        foreach (var key in AppHostUrlKeys)
        {
            foreach (var url in (builder.Configuration[key] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                if (Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) && uri.Port > 0 && uri.IsLoopback)
                {
                    EnsureFree(uri.Port, $"the AppHost ({key}={url})",
                        "the launch profile in ChatStack.AppHost/Properties/launchSettings.json");
                }
            }
        }

        return builder;
    }

    /// <summary>Throws <see cref="GoogleCloudEmulatorException"/> when <paramref name="port"/> is taken on loopback.</summary>
    public static void EnsureFree(int port, string owner, string setting)
    {
        if (!IsFree(port))
        {
            throw new GoogleCloudEmulatorException(
                $"Port {port}, needed by {owner}, is already in use. Stop the process that holds it (is another ChatStack " +
                $"AppHost running? 'ss -ltnp | grep :{port}' shows it) or change the port in {setting}.");
        }
    }

    internal static bool IsFree(int port)
    {
        try
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            return false;
        }
    }
}
