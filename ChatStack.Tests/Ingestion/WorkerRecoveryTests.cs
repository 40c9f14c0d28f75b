using System.Text.RegularExpressions;
using ChatStack.Contracts;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;

namespace ChatStack.Tests.Ingestion;

/// <summary>A worker of its own, on a project of its own, that the tests crash and stop.</summary>
[Collection(StackCollection.Name)]
public sealed class WorkerRecoveryTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private readonly WorkerTestProject _project = new(stack, "wk");

    public void Dispose() => _project.Dispose();

    private Dictionary<string, string> WorkerEnvironment(string pullMode = "Auto")
    {
        var environment = _project.WorkerEnvironment();
        environment["Ingestion__PullMode"] = pullMode;
        environment["Ingestion__BatchSize"] = "100";
        return environment;
    }

    /// <remarks>
    /// In the emulator's default unary-Pull mode: the emulator strands the messages of a StreamingPull client
    /// that died (real Pub/Sub redelivers them once their lease runs out).
    /// </remarks>
    [Fact]
    public async Task A_worker_killed_mid_stream_and_restarted_loses_nothing_and_counts_nothing_twice()
    {
        await _project.ProvisionAsync();
        const int Events = 3000;
        await _project.PublishAsync(Events);

        // Inserts through a slow link: at most ~100 rows per 100 ms, so the crash lands mid-stream however fast the
        // machine is (unthrottled, the local emulator took all 3000 rows between two polls of the count).
        await using var slowLink = new TcpGate(stack.BigQueryHost) { Latency = TimeSpan.FromMilliseconds(50) };
        var firstEnvironment = WorkerEnvironment();
        firstEnvironment["BIGQUERY_EMULATOR_HOST"] = slowLink.Address;
        using (var first = new WorkerProcess(firstEnvironment))
        {
            var partial = await _project.WaitForAsync(c => c.Rows >= 300, TimeSpan.FromSeconds(120));
            first.Crash();
            output.WriteLine($"killed the worker with {partial.Rows} rows written");
            Assert.InRange(partial.Rows, 300, Events - 1);
        }

        using var second = new WorkerProcess(WorkerEnvironment());
        var final = await _project.WaitForAsync(c => c.Distinct >= Events, TimeSpan.FromSeconds(180));
        await Task.Delay(TimeSpan.FromSeconds(12)); // one more lease period: any redelivery would have landed by now
        final = await _project.CountAsync();
        output.WriteLine($"after restart: {final.Rows} rows, {final.Distinct} distinct events");
        Assert.Equal(Events, final.Distinct);
        Assert.Equal(Events, final.Rows);
    }

    [Theory]
    [InlineData("Streaming")]
    [InlineData("Unary")]
    public async Task A_stopped_worker_finishes_its_batch_and_hands_the_rest_back(string pullMode)
    {
        await _project.ProvisionAsync();
        const int Events = 2000;
        await _project.PublishAsync(Events);

        // Leases of two minutes, and a first worker that inserts through a slow link so that it still holds most of
        // the messages when it is stopped.
        await using var slowLink = new TcpGate(stack.BigQueryHost) { Latency = TimeSpan.FromMilliseconds(50) };
        var environment = WorkerEnvironment(pullMode);
        environment["Ingestion__AckDeadlineSeconds"] = "120";
        environment["BIGQUERY_EMULATOR_HOST"] = slowLink.Address;
        var worker = new WorkerProcess(environment);
        await _project.WaitForAsync(c => c.Rows >= 200, TimeSpan.FromSeconds(120));
        var exitCode = await worker.StopAsync(TimeSpan.FromSeconds(30));
        var log = worker.Log;
        worker.Dispose();
        output.WriteLine(log);
        Assert.Equal(0, exitCode);
        var released = int.Parse(Regex.Match(log, @"released (\d+) unprocessed messages").Groups[1].Value);
        var written = (await _project.CountAsync()).Rows;
        output.WriteLine($"stopped with {written} rows written and {released} messages released");
        Assert.InRange(released, 1, Events - (int)written);

        // Released messages are redelivered at once, not after their lease: a new worker finishes well within it.
        environment["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost;
        using var second = new WorkerProcess(environment);
        var final = await _project.WaitForAsync(c => c.Distinct >= Events, TimeSpan.FromSeconds(60));
        Assert.Equal(Events, final.Distinct);
        Assert.Equal(Events, final.Rows);
    }

    [Fact]
    public async Task With_bigquery_writes_off_the_worker_leaves_events_in_the_subscription()
    {
        await _project.ProvisionAsync();
        await _project.PublishAsync(50);
        var environment = WorkerEnvironment();
        environment["ENABLE_BQ_WRITE"] = "false";

        var worker = new WorkerProcess(environment);
        await Task.Delay(TimeSpan.FromSeconds(5));
        var exitCode = await worker.StopAsync(TimeSpan.FromSeconds(30));
        var log = worker.Log;
        worker.Dispose();

        Assert.Equal(0, exitCode);
        Assert.Contains("BigQuery writes are off", log);
        Assert.Equal(0, (await _project.CountAsync()).Rows);
        var subscriber = new Subscriber.SubscriberClient(_project.Channel);
        var waiting = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (waiting.Count < 50 && DateTime.UtcNow < deadline)
        {
            try
            {
                var pulled = await subscriber.PullAsync(new PullRequest
                {
                    Subscription = PubSubNames.Subscription(_project.Id, ResourceNames.ChatEventsSubscription),
                    MaxMessages = 100,
                }, deadline: DateTime.UtcNow.AddSeconds(3));
                waiting.UnionWith(pulled.ReceivedMessages.Select(m => m.Message.MessageId));
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.DeadlineExceeded)
            {
            }
        }

        Assert.Equal(50, waiting.Count);
    }
}
