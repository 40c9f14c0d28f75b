using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.Deployment;

/// <summary>Services stop within Cloud Run's 10 s between SIGTERM and SIGKILL.</summary>
public class GracefulShutdownTests
{
    [Fact]
    public void A_service_gives_itself_8_seconds_to_stop()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.AddBasicServiceDefaults();
        using var app = builder.Build();

        Assert.Equal(TimeSpan.FromSeconds(8), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Fact]
    public void The_hosts_own_setting_still_wins()
    {
        var builder = WebApplication.CreateSlimBuilder(["--shutdownTimeoutSeconds=20"]);
        builder.AddBasicServiceDefaults();
        using var app = builder.Build();

        Assert.Equal(TimeSpan.FromSeconds(20), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }
}
