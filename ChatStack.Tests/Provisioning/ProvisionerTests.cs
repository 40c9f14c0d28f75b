using System.CommandLine;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Provisioner.Cli;
using ChatStack.Provisioner.Infrastructure;
using ChatStack.Provisioner.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.PubSub.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Provisioning;

/// <summary>The provisioner against the real Pub/Sub emulator; every test in a project of its own.</summary>
[Collection(StackCollection.Name)]
public sealed class ProvisionerTests(StackFixture stack, ITestOutputHelper output) : IDisposable
{
    private readonly string _project = $"prov-{Guid.NewGuid():N}"[..20];
    private GrpcPubSubAdmin? _admin;
    private Grpc.Net.Client.GrpcChannel? _channel;

    private GrpcPubSubAdmin Admin
    {
        get
        {
            _channel ??= GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
            return _admin ??= new GrpcPubSubAdmin(new Publisher.PublisherClient(_channel), new Subscriber.SubscriberClient(_channel));
        }
    }

    public void Dispose() => _channel?.Dispose();

    private async Task<(int ExitCode, string Output, string Error)> Run(string[] args, string? pubSubHost = null, string? project = "")
    {
        using var clients = new EmulatorClients(stack, _project);
        var result = await clients.ProvisionAsync(args, pubSubHost, project);
        output.WriteLine($"$ provision {string.Join(' ', args)} -> {result.ExitCode}\n{result.Output}{result.Error}");
        return result;
    }

    private string Topic(string id) => PubSubNames.Topic(_project, id);

    private string Subscription(string id) => PubSubNames.Subscription(_project, id);

    [Fact]
    public async Task Fresh_provision_creates_topics_and_subscriptions_as_declared()
    {
        var (exitCode, text, _) = await Run(["provision"]);

        Assert.Equal(0, exitCode);
        Assert.Contains("create 9, update 0, unchanged 0, incompatible 0", text);
        Assert.NotNull(await Admin.GetTopicAsync(Topic(ResourceNames.ChatEventsTopic), default));
        Assert.NotNull(await Admin.GetTopicAsync(Topic(ResourceNames.DeadLetterTopic), default));
        var subscription = await Admin.GetSubscriptionAsync(Subscription(ResourceNames.ChatEventsSubscription), default);
        Assert.NotNull(subscription);
        Assert.Equal(Topic(ResourceNames.ChatEventsTopic), subscription.Topic);
        Assert.Equal(60, subscription.AckDeadlineSeconds);
        Assert.Equal(Topic(ResourceNames.DeadLetterTopic), subscription.DeadLetterPolicy.DeadLetterTopic);
        Assert.Equal(5, subscription.DeadLetterPolicy.MaxDeliveryAttempts);
        Assert.Equal(TimeSpan.FromSeconds(10), subscription.RetryPolicy.MinimumBackoff.ToTimeSpan());
        Assert.Equal(TimeSpan.FromDays(7), subscription.MessageRetentionDuration.ToTimeSpan());
        var deadLetters = await Admin.GetSubscriptionAsync(Subscription(ResourceNames.DeadLetterSubscription), default);
        Assert.Equal(Topic(ResourceNames.DeadLetterTopic), deadLetters?.Topic);
    }

    [Fact]
    public async Task A_second_run_changes_nothing()
    {
        Assert.Equal(0, (await Run(["provision"])).ExitCode);

        var (exitCode, text, _) = await Run(["provision"]);

        Assert.Equal(0, exitCode);
        Assert.Contains("create 0, update 0, unchanged 9, incompatible 0", text);
    }

    [Fact]
    public async Task Dry_run_on_a_fresh_project_prints_the_plan_exits_2_and_creates_nothing()
    {
        var (exitCode, text, _) = await Run(["provision", "--dry-run"]);

        Assert.Equal(2, exitCode);
        Assert.Equal(
            [
                "Plan (dry run, nothing is changed):",
                "  + pubsub.topic           chat-events                              create",
                "  + pubsub.topic           chat-events-dlq                          create",
                "  + pubsub.subscription    chat-events-dlq-hold                     create",
                "  + pubsub.subscription    chat-events-to-bq                        create",
                "  + bigquery.dataset       chat_analytics                           create",
                "  + bigquery.table         chat_analytics.chat_events               create",
                "  + bigquery.table         chat_analytics.tool_invocations          create",
                "  + bigquery.view          chat_analytics.v_chat_sessions_summary   create",
                "  + bigquery.view          chat_analytics.v_tool_usage_summary      create",
                "to create 9, to update 0, unchanged 0, incompatible 0.",
            ],
            text.TrimEnd().Split(Environment.NewLine));
        Assert.Null(await Admin.GetTopicAsync(Topic(ResourceNames.ChatEventsTopic), default));
    }

    [Fact]
    public async Task Run_as_a_command_a_dry_run_prints_only_the_plan_on_stdout_and_no_request_logs()
    {
        using var process = new DotnetProcess(DotnetProcess.BuiltApp("ChatStack.Provisioner"), ["provision", "--dry-run"],
        [
            new("GOOGLE_CLOUD_PROJECT", _project),
            new("PUBSUB_EMULATOR_HOST", stack.PubSubHost),
            new("BIGQUERY_EMULATOR_HOST", stack.BigQueryHost),
        ]);
        var exitCode = await process.WaitForExitAsync(TimeSpan.FromMinutes(1));
        output.WriteLine($"stdout:\n{process.StandardOutput}\nstderr:\n{process.StandardError}");

        Assert.Equal(2, exitCode);
        var lines = process.StandardOutput.TrimEnd().Split(Environment.NewLine);
        Assert.Equal("Plan (dry run, nothing is changed):", lines[0]);
        Assert.Equal("to create 9, to update 0, unchanged 0, incompatible 0.", lines[^1]);
        Assert.All(lines[1..^1], line => Assert.StartsWith("  + ", line));
        Assert.DoesNotContain("info:", process.StandardError);
    }

    [Fact]
    public async Task Dry_run_on_a_provisioned_project_has_nothing_to_do_and_exits_0()
    {
        Assert.Equal(0, (await Run(["provision"])).ExitCode);

        var (exitCode, text, _) = await Run(["provision", "--dry-run"]);

        Assert.Equal(0, exitCode);
        Assert.Equal(9, text.Split(Environment.NewLine).Count(line => line.EndsWith("unchanged", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_half_built_project_is_finished()
    {
        await Admin.CreateTopicAsync(new Topic { Name = Topic(ResourceNames.ChatEventsTopic) }, default);

        var (exitCode, text, _) = await Run(["provision"]);

        Assert.Equal(0, exitCode);
        Assert.Contains("create 8, update 0, unchanged 1, incompatible 0", text);
        Assert.NotNull(await Admin.GetSubscriptionAsync(Subscription(ResourceNames.ChatEventsSubscription), default));
    }

    [Fact]
    public async Task A_drifted_subscription_is_shown_field_by_field_and_updated_in_place()
    {
        await Admin.CreateTopicAsync(new Topic { Name = Topic(ResourceNames.ChatEventsTopic) }, default);
        await Admin.CreateTopicAsync(new Topic { Name = Topic(ResourceNames.DeadLetterTopic) }, default);
        await Admin.CreateSubscriptionAsync(new Subscription
        {
            Name = Subscription(ResourceNames.ChatEventsSubscription),
            Topic = Topic(ResourceNames.ChatEventsTopic),
            AckDeadlineSeconds = 10,
        }, default);

        var plan = await Run(["provision", "--dry-run"]);
        Assert.Equal(2, plan.ExitCode);
        Assert.Contains("  ~ pubsub.subscription    chat-events-to-bq                        update", plan.Output);
        Assert.Contains("      ackDeadlineSeconds: 10 -> 60", plan.Output);
        Assert.Contains($"      deadLetterPolicy.deadLetterTopic: (none) -> {Topic(ResourceNames.DeadLetterTopic)}", plan.Output);

        Assert.Equal(0, (await Run(["provision"])).ExitCode);
        var updated = await Admin.GetSubscriptionAsync(Subscription(ResourceNames.ChatEventsSubscription), default);
        Assert.Equal(60, updated!.AckDeadlineSeconds);
        Assert.Equal(5, updated.DeadLetterPolicy.MaxDeliveryAttempts);
        Assert.Contains("unchanged 9", (await Run(["provision"])).Output);
    }

    [Fact]
    public async Task Every_subscription_is_created_to_never_expire_however_long_nobody_pulls()
    {
        Assert.Equal(0, (await Run(["provision"])).ExitCode);

        foreach (var id in new[] { ResourceNames.DeadLetterSubscription, ResourceNames.ChatEventsSubscription })
        {
            // A policy with no TTL never expires; no policy at all is Pub/Sub's 31-day default.
            var subscription = await Admin.GetSubscriptionAsync(Subscription(id), default);
            Assert.NotNull(subscription?.ExpirationPolicy);
            Assert.Null(subscription.ExpirationPolicy.Ttl);
        }
    }

    [Fact]
    public async Task A_subscription_that_expires_when_idle_is_planned_and_updated_to_never_expire()
    {
        await Admin.CreateTopicAsync(new Topic { Name = Topic(ResourceNames.DeadLetterTopic) }, default);
        await Admin.CreateSubscriptionAsync(new Subscription
        {
            Name = Subscription(ResourceNames.DeadLetterSubscription),
            Topic = Topic(ResourceNames.DeadLetterTopic),
            AckDeadlineSeconds = ChatStackInfrastructure.AckDeadlineSeconds,
            MessageRetentionDuration = Duration.FromTimeSpan(TimeSpan.FromDays(7)),
            // What real Pub/Sub reports for a subscription created without a policy.
            ExpirationPolicy = new ExpirationPolicy { Ttl = Duration.FromTimeSpan(TimeSpan.FromDays(31)) },
        }, default);

        var plan = await Run(["provision", "--dry-run"]);
        Assert.Equal(2, plan.ExitCode);
        Assert.Contains(
            $"  ~ pubsub.subscription    chat-events-dlq-hold                     update{Environment.NewLine}      expirationPolicy.ttl: 2678400s -> never{Environment.NewLine}",
            plan.Output);

        // The emulator refuses to update expiration_policy, so the update is recorded here instead of sent.
        var admin = new UpdateRecordingAdmin(Admin);
        var resource = new SubscriptionResource(admin, _project, new SubscriptionSpec(
            ResourceNames.DeadLetterSubscription, ResourceNames.DeadLetterTopic, ChatStackInfrastructure.AckDeadlineSeconds, TimeSpan.FromDays(7)));
        var change = await resource.PlanAsync(default);
        Assert.Equal(ChangeKind.Update, change.Action);
        await resource.ApplyAsync(change, default);
        var (updated, mask) = Assert.Single(admin.Updates);
        Assert.Equal(["expiration_policy"], mask.Paths);
        Assert.NotNull(updated.ExpirationPolicy);
        Assert.Null(updated.ExpirationPolicy.Ttl);
    }

    [Fact]
    public async Task A_subscription_on_another_topic_is_reported_exits_3_and_is_not_destroyed()
    {
        var otherTopic = Topic("someone-elses-topic");
        await Admin.CreateTopicAsync(new Topic { Name = otherTopic }, default);
        await Admin.CreateSubscriptionAsync(new Subscription
        {
            Name = Subscription(ResourceNames.ChatEventsSubscription),
            Topic = otherTopic,
            AckDeadlineSeconds = 10,
        }, default);

        var (exitCode, text, _) = await Run(["provision"]);

        Assert.Equal(3, exitCode);
        Assert.Contains("  ! pubsub.subscription    chat-events-to-bq                        incompatible", text);
        Assert.Contains($"      topic: {otherTopic} -> {Topic(ResourceNames.ChatEventsTopic)}", text);
        Assert.Contains("left untouched", text);
        var kept = await Admin.GetSubscriptionAsync(Subscription(ResourceNames.ChatEventsSubscription), default);
        Assert.Equal(otherTopic, kept!.Topic);
        Assert.Equal(10, kept.AckDeadlineSeconds);
        // The rest still converged.
        Assert.NotNull(await Admin.GetSubscriptionAsync(Subscription(ResourceNames.DeadLetterSubscription), default));
    }

    [Fact]
    public async Task Unknown_flags_are_rejected_before_anything_is_touched()
    {
        var (exitCode, _, error) = await Run(["provision", "--datset", "x"]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("--datset", error);
        Assert.Null(await Admin.GetTopicAsync(Topic(ResourceNames.ChatEventsTopic), default));
    }

    [Fact]
    public async Task An_invalid_dataset_name_is_rejected_with_the_rule()
    {
        var (exitCode, _, error) = await Run(["provision", "--dataset", "chat-analytics"]);

        Assert.Equal(1, exitCode);
        Assert.Contains("Invalid dataset name 'chat-analytics'", error);
        Assert.Null(await Admin.GetTopicAsync(Topic(ResourceNames.ChatEventsTopic), default));
    }

    [Fact]
    public async Task A_missing_project_id_says_how_to_set_it()
    {
        var (exitCode, _, error) = await Run(["provision"], project: null);

        Assert.Equal(1, exitCode);
        Assert.Contains("No Google Cloud project id: pass --project or set GOOGLE_CLOUD_PROJECT.", error);
    }

    [Theory]
    [InlineData(false)] // Pub/Sub, planned first: gRPC reports the credentials' failure as the call's Internal error
    [InlineData(true)] // BigQuery, with Pub/Sub on the emulator: the REST client's handler throws it
    public async Task Without_credentials_for_real_google_cloud_one_line_says_how_to_get_them(bool pubSubOnEmulator)
    {
        // A key file that does not exist fails the same on every machine, whatever credentials it has set up.
        var previous = Environment.GetEnvironmentVariable("GOOGLE_APPLICATION_CREDENTIALS");
        Environment.SetEnvironmentVariable("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/chatstack-test-key.json");
        try
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var settings = new Dictionary<string, string?>
            {
                ["PUBSUB_EMULATOR_HOST"] = pubSubOnEmulator ? stack.PubSubHost : null,
                ["BIGQUERY_EMULATOR_HOST"] = null,
                ["GOOGLE_CLOUD_PROJECT"] = _project,
            };
            var exitCode = await ProvisionerCli.Create(host => host.Configuration.AddInMemoryCollection(settings))
                .Parse(["provision", "--dry-run"]).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
            output.WriteLine($"{stdout}{stderr}");

            Assert.Equal(1, exitCode);
            var error = stderr.ToString().Trim();
            Assert.StartsWith("Provisioning failed: No Google Cloud credentials: Error reading credential file from location /nonexistent/chatstack-test-key.json", error);
            Assert.EndsWith("Run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or set the *_EMULATOR_HOST variables to use the emulators.", error);
            Assert.DoesNotContain('\n', error);
            Assert.DoesNotContain("Internal", error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("GOOGLE_APPLICATION_CREDENTIALS", previous);
        }
    }

    [Fact]
    public async Task An_unreachable_pubsub_fails_with_one_message_naming_it()
    {
        var (exitCode, _, error) = await Run(["provision"], pubSubHost: "127.0.0.1:9");

        Assert.Equal(1, exitCode);
        Assert.StartsWith("Provisioning failed: the Pub/Sub emulator at 127.0.0.1:9 answered Unavailable", error.Trim());
    }

    [Fact]
    public async Task A_run_stopped_with_a_pubsub_call_in_flight_stops_quietly()
    {
        var logs = new FakeLogCollector();
        using var stop = new CancellationTokenSource();
        var stopAtFirstCall = new StopAtFirstCall(stop);
        var stderr = new StringWriter();
        var exitCode = await ProvisionerCli.Create(host =>
            {
                host.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost,
                    ["BIGQUERY_EMULATOR_HOST"] = stack.BigQueryHost,
                    ["GOOGLE_CLOUD_PROJECT"] = _project,
                });
                host.Logging.AddProvider(new FakeLoggerProvider(logs));
                // Ctrl+C as the first Pub/Sub call leaves: the call goes on with the run's token cancelled.
                _channel ??= GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
                host.Services.AddSingleton(new Publisher.PublisherClient(_channel.Intercept(stopAtFirstCall)));
            })
            .Parse(["provision"]).InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = stderr }, stop.Token);
        output.WriteLine($"-> {exitCode}\n{stderr}");

        Assert.Equal(1, stopAtFirstCall.Calls);
        Assert.Equal(ProvisioningResult.Stopped, exitCode);
        Assert.Equal("Provisioning stopped before it finished; run it again to converge the rest.", stderr.ToString().Trim());
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
    }

    /// <summary>Cancels the run as its first Pub/Sub call leaves.</summary>
    private sealed class StopAtFirstCall(CancellationTokenSource stop) : Interceptor
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context,
            AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                stop.Cancel();
            }

            return continuation(request, context);
        }
    }

    /// <summary>Reads through to the emulator; records subscription updates instead of sending them.</summary>
    private sealed class UpdateRecordingAdmin(IPubSubAdmin inner) : IPubSubAdmin
    {
        public List<(Subscription Subscription, FieldMask Mask)> Updates { get; } = [];

        public Task<Topic?> GetTopicAsync(string topicName, CancellationToken cancellationToken) => inner.GetTopicAsync(topicName, cancellationToken);

        public Task<Topic> CreateTopicAsync(Topic topic, CancellationToken cancellationToken) => inner.CreateTopicAsync(topic, cancellationToken);

        public Task<Topic> UpdateTopicAsync(Topic topic, FieldMask updateMask, CancellationToken cancellationToken) =>
            inner.UpdateTopicAsync(topic, updateMask, cancellationToken);

        public Task<Subscription?> GetSubscriptionAsync(string subscriptionName, CancellationToken cancellationToken) =>
            inner.GetSubscriptionAsync(subscriptionName, cancellationToken);

        public Task<Subscription> CreateSubscriptionAsync(Subscription subscription, CancellationToken cancellationToken) =>
            inner.CreateSubscriptionAsync(subscription, cancellationToken);

        public Task<Subscription> UpdateSubscriptionAsync(Subscription subscription, FieldMask updateMask, CancellationToken cancellationToken)
        {
            Updates.Add((subscription, updateMask));
            return Task.FromResult(subscription);
        }
    }
}
