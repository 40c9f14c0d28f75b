using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;
using ChatStack.GoogleCloud;
using ChatStack.Tests.Support;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace ChatStack.Tests.GoogleCloud;

/// <summary>The readiness check of every service that uses Firestore, against the real emulator and against no Firestore.</summary>
[Collection(StackCollection.Name)]
public sealed class FirestoreHealthCheckTests(StackFixture stack)
{
    [Fact]
    public async Task A_reachable_Firestore_is_healthy_and_the_probe_throws_nothing()
    {
        using var host = BuildHost(stack.FirestoreHost);
        // Probes run every few seconds for the life of a service: a probe that throws and catches would fill
        // traces and debuggers with first-chance exceptions.
        int probeExceptions = 0;
        void Count(object? sender, FirstChanceExceptionEventArgs e)
        {
            if (e.Exception is RpcException rpc && rpc.Status.Detail.Contains("_health", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref probeExceptions);
            }
        }

        AppDomain.CurrentDomain.FirstChanceException += Count;
        HealthReport report;
        try
        {
            report = await CheckAsync(host);
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }

        Assert.Equal(HealthStatus.Healthy, report.Entries["firestore"].Status);
        Assert.Equal(0, probeExceptions);
    }

    [Fact]
    public async Task A_Firestore_that_refuses_connections_is_unhealthy_with_the_reason()
    {
        using var host = BuildHost("127.0.0.1:9"); // nothing listens there, as in the other "no Firestore" tests
        var entry = (await CheckAsync(host)).Entries["firestore"];

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.StartsWith("Firestore did not answer", entry.Description);
    }

    [Fact]
    public async Task A_missing_database_is_unhealthy_and_says_which_database_is_missing_not_that_firestore_did_not_answer()
    {
        // What real Firestore answers when the configured database was never created (or is misnamed), as the
        // chat API's store-refusal tests have it; the emulator makes any database it is asked for.
        const string NoDatabase = "The database (default) does not exist for project health-check-tests Please visit https://console.cloud.google.com/datastore/setup?project=health-check-tests to add a Cloud Datastore or Cloud Firestore database.";
        var faults = new FirestoreFaults();
        faults.Fail(_ => true, StatusCode.NotFound, times: int.MaxValue, detail: NoDatabase);
        using var host = BuildHost(stack.FirestoreHost, services => services.AddSingleton(_ => new Google.Cloud.Firestore.V1.Firestore.FirestoreClient(
            GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint).Intercept(faults))));

        var entry = (await CheckAsync(host)).Entries["firestore"];

        Assert.Equal(1, faults.Injected);
        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.StartsWith("Firestore has no database '(default)' in project 'health-check-tests'", entry.Description);
        Assert.Contains(NoDatabase, entry.Description);
        Assert.DoesNotContain("did not answer", entry.Description);
    }

    [Fact]
    public async Task A_Firestore_that_never_answers_is_unhealthy_within_the_probe_deadline()
    {
        // Takes the connection and says nothing: only the probe's own deadline ends the read.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var host = BuildHost($"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");

        var started = DateTime.UtcNow;
        var entry = (await CheckAsync(host).WaitAsync(TimeSpan.FromSeconds(30))).Entries["firestore"];

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Equal(StatusCode.DeadlineExceeded, Assert.IsType<RpcException>(entry.Exception).StatusCode);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Checks_share_one_probe_for_a_few_seconds_so_public_health_requests_are_not_firestore_reads()
    {
        // /health is public: each check used to be a billed Firestore read, however many came.
        var reads = new CountReads();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        using var host = BuildHost(stack.FirestoreHost, services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddSingleton(_ => new Google.Cloud.Firestore.V1.Firestore.FirestoreClient(
                GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint).Intercept(reads)));
        });

        var reports = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => CheckAsync(host)));
        for (var i = 0; i < 10; i++)
        {
            reports = [.. reports, await CheckAsync(host)];
            time.Advance(TimeSpan.FromMilliseconds(400));
        }

        Assert.All(reports, r => Assert.Equal(HealthStatus.Healthy, r.Entries["firestore"].Status));
        Assert.Equal(1, reads.Count);

        // Past five seconds the next check reads again.
        time.Advance(TimeSpan.FromSeconds(1.1));
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(host)).Entries["firestore"].Status);
        Assert.Equal(2, reads.Count);
    }

    private sealed class CountReads : Grpc.Core.Interceptors.Interceptor
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
            Grpc.Core.Interceptors.ClientInterceptorContext<TRequest, TResponse> context,
            Grpc.Core.Interceptors.Interceptor.AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            Interlocked.Increment(ref _count);
            return continuation(request, context);
        }
    }

    private static IHost BuildHost(string firestoreHost, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateApplicationBuilder();
        services?.Invoke(builder.Services);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FIRESTORE_EMULATOR_HOST"] = firestoreHost,
            ["GOOGLE_CLOUD_PROJECT"] = "health-check-tests",
        });
        builder.AddFirestoreClient();
        return builder.Build();
    }

    private static Task<HealthReport> CheckAsync(IHost host) =>
        host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
}
