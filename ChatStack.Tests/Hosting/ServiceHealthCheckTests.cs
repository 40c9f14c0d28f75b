// The one-call evaluator is marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running app;
// for reading what a resource would be launched with it is exactly right.
#pragma warning disable CS0618

using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Hosting.GoogleCloud;
using ChatStack.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChatStack.Tests.Hosting;

/// <summary>
/// What the dashboard shows for a service, from what its <c>/health</c> answers: the AppHost's own health checks of
/// the resource, run against a stand-in server at the resource's address. A worker whose BigQuery writes fail answers
/// 200 <c>Degraded</c>, and the dashboard must not call that Healthy.
/// </summary>
public sealed class ServiceHealthCheckTests : IAsyncLifetime
{
    /// <summary>What the stand-in answers to <c>GET /health</c>; set by each step of a test.</summary>
    private volatile Answer _answer = new(StatusCodes.Status200OK, "Healthy");

    private LocalServer _server = null!;

    private sealed record Answer(int Status, string Body);

    public async Task InitializeAsync() => _server = await LocalServer.StartAsync(app => app.MapGet("/health", (HttpContext context) =>
    {
        var answer = _answer;
        context.Response.StatusCode = answer.Status;
        return context.Response.WriteAsync(answer.Body);
    }));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// <summary>
    /// The resource's health as the dashboard derives it: the worst of its health checks' reports, run by the health
    /// check service the AppHost registered them with (its services, without building the app: nothing is started).
    /// </summary>
    private static async Task<HealthReport> CheckAsync(IServiceProvider services, IResource resource)
    {
        var keys = resource.Annotations.OfType<HealthCheckAnnotation>().Select(a => a.Key).ToHashSet();
        Assert.NotEmpty(keys);
        return await services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => keys.Contains(r.Name));
    }

    [Theory]
    [InlineData("analytics-worker")]
    [InlineData("chat-api")]
    public async Task A_service_whose_health_endpoint_says_degraded_is_degraded_on_the_dashboard_and_the_other_answers_map_as_before(string service)
    {
        using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);
        AppHostModel.AllocatePortsAndFindChatApi(builder);
        var resource = builder.Resources.OfType<ProjectResource>().Single(r => r.Name == service);
        AppHostModel.Allocate(resource, "http", _server.Address.Host, _server.Address.Port);
        await using var services = builder.Services.BuildServiceProvider();

        _answer = new(StatusCodes.Status200OK, "Degraded");
        var degraded = await CheckAsync(services, resource);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);

        // A service that says why (ServiceDefaults, when the AppHost asks): the reason is what the dashboard shows.
        _answer = new(StatusCodes.Status200OK, "Degraded\nbigquery-writes: Degraded: BigQuery writes have failed for 0:00:05");
        var entry = Assert.Single((await CheckAsync(services, resource)).Entries.Values);
        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Contains("bigquery-writes: Degraded: BigQuery writes have failed for 0:00:05", entry.Description);

        _answer = new(StatusCodes.Status200OK, "Healthy");
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(services, resource)).Status);

        _answer = new(StatusCodes.Status503ServiceUnavailable, "Unhealthy");
        Assert.Equal(HealthStatus.Unhealthy, (await CheckAsync(services, resource)).Status);

        // Nothing listening: the address is read at each check, as a restarted resource gets a new one.
        var closed = LocalServer.ClosedPort();
        AppHostModel.Allocate(resource, "http", "127.0.0.1", closed);
        var refused = Assert.Single((await CheckAsync(services, resource)).Entries.Values);
        Assert.Equal(HealthStatus.Unhealthy, refused.Status);
        Assert.Contains($"127.0.0.1:{closed}", refused.Description);
    }

    [Fact]
    public async Task Both_services_carry_the_check_on_the_local_stack_and_it_asks_them_for_their_reasons()
    {
        using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);
        AppHostModel.AllocatePortsAndFindChatApi(builder);
        foreach (var service in new[] { "analytics-worker", "chat-api" })
        {
            var resource = builder.Resources.OfType<ProjectResource>().Single(r => r.Name == service);
            Assert.Equal([$"{service}_http_/health_status"], resource.Annotations.OfType<HealthCheckAnnotation>().Select(a => a.Key));
            var environment = await resource.GetEnvironmentVariableValuesAsync();
            Assert.Equal("true", environment[ServiceHealthCheckExtensions.IncludeDescriptionsVariable]);
        }
    }

    [Fact]
    public async Task Both_services_carry_the_check_when_published_and_the_deployed_services_keep_their_reasons_to_themselves()
    {
        var output = Directory.CreateTempSubdirectory("chatstack-health-manifest-");
        try
        {
            using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(
                ["--publisher", "manifest", "--output-path", Path.Combine(output.FullName, "manifest.json"), "--Parameters:gcp-project-id=health-test"]);
            Assert.True(builder.ExecutionContext.IsPublishMode);
            foreach (var service in new[] { "analytics-worker", "chat-api" })
            {
                var resource = builder.Resources.OfType<ProjectResource>().Single(r => r.Name == service);
                Assert.Equal([$"{service}_http_/health_status"], resource.Annotations.OfType<HealthCheckAnnotation>().Select(a => a.Key));
                var environment = await resource.GetEnvironmentVariableValuesAsync(DistributedApplicationOperation.Publish);
                Assert.DoesNotContain(ServiceHealthCheckExtensions.IncludeDescriptionsVariable, environment.Keys);
            }
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }
}
