using System.Text.Json;
using Aspire.Hosting.Testing;
using ChatStack.Contracts;
using ChatStack.GoogleCloud;
using ChatStack.GoogleCloud.BigQuery;
using ChatStack.GoogleCloud.PubSub;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Cloud.PubSub.V1;

namespace ChatStack.Tests.DualWrite;

/// <summary>Chats through the real chat API end as Firestore documents and, through Pub/Sub and the worker, as BigQuery rows.</summary>
[Collection(StackCollection.Name)]
public sealed class DualWriteTests(StackFixture stack, ITestOutputHelper output)
{
    [Fact]
    public async Task A_chat_through_the_api_lands_in_bigquery_with_the_figures_the_stream_reported()
    {
        var chat = await ChatApiClient.SignInAsync(stack.App.CreateHttpClient("chat-api"), "dual-write-user");
        var events = await chat.ChatAsync(new { message = "What is 12*7?" });
        var session = chat.LastSessionId!;
        var done = events.Single(e => e.Event == "done");
        var usage = JsonDocument.Parse(done.Data).RootElement.GetProperty("data").GetProperty("usage");
        output.WriteLine($"session {session}: {usage}");

        using var clients = new EmulatorClients(stack, "chatstack-local");
        var sql = $"SELECT event_type, prompt_tokens, completion_tokens, total_tokens, budget_max FROM `chatstack-local.{ResourceNames.Dataset}.{ResourceNames.ChatEventsTable}` WHERE session_id = '{session}' ORDER BY event_timestamp";
        List<Dictionary<string, object?>> rows = [];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (rows.Count < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(300);
            var response = await clients.BigQuery.QueryAsync(new QueryRequest { Query = sql });
            rows = (response.Rows ?? []).Select(r => BigQueryRows.Decode(r, response.Schema!)).ToList();
        }

        Assert.Equal(["user_message", "assistant_message"], rows.Select(r => (string?)r["event_type"]));
        var answer = rows[1];
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt64(), answer["prompt_tokens"]);
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt64(), answer["completion_tokens"]);
        Assert.Equal(usage.GetProperty("total_tokens").GetInt64(), answer["total_tokens"]);
        Assert.Equal(usage.GetProperty("budget_max").GetInt64(), answer["budget_max"]);

        var toolEvents = events.Count(e => e.Event == "tool_end");
        Assert.True(toolEvents > 0, "the offline model calls the calculator for arithmetic");
        var toolRows = 0;
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (toolRows < toolEvents && DateTime.UtcNow < deadline)
        {
            await Task.Delay(300);
            var tools = await clients.BigQuery.QueryAsync(new QueryRequest
            {
                Query = $"SELECT tool_name, status FROM `chatstack-local.{ResourceNames.Dataset}.{ResourceNames.ToolInvocationsTable}` WHERE session_id = '{session}'",
            });
            toolRows = (tools.Rows ?? []).Count;
        }

        Assert.Equal(toolEvents, toolRows);

        // The session summary view, which analysts read, shows the same turn: one exchange, its usage, its tools.
        var summary = await clients.BigQuery.QueryAsync(new QueryRequest
        {
            Query = $"SELECT user_id, user_messages, assistant_messages, prompt_tokens, completion_tokens, total_tokens, tool_calls FROM `chatstack-local.{ResourceNames.Dataset}.{ResourceNames.SessionsSummaryView}` WHERE session_id = '{session}'",
        });
        var view = BigQueryRows.Decode(Assert.Single(summary.Rows ?? []), summary.Schema!);
        Assert.Equal("dual-write-user", view["user_id"]);
        Assert.Equal(1L, view["user_messages"]);
        Assert.Equal(1L, view["assistant_messages"]);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt64(), view["prompt_tokens"]);
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt64(), view["completion_tokens"]);
        Assert.Equal(usage.GetProperty("total_tokens").GetInt64(), view["total_tokens"]);
        Assert.Equal((long)toolEvents, view["tool_calls"]);
    }

    [Theory]
    [InlineData("ENABLE_DUAL_WRITE")]
    [InlineData("ENABLE_PUBSUB")]
    public async Task Turning_the_cold_path_off_keeps_chats_in_firestore_only(string flag)
    {
        var project = $"off-{Guid.NewGuid():N}"[..20];
        var settings = new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = project, ["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost, [flag] = "false" };
        await using (var api = await ChatApiHost.StartAsync(stack.FirestoreHost, settings))
        {
            var chat = await ChatApiClient.SignInAsync(api.Address, "flag-user");
            var events = await chat.ChatAsync(new { message = "Hello there" });
            Assert.Contains(events, e => e.Event == "done");
            Assert.Equal(2, (await chat.GetJsonAsync($"/api/sessions/{chat.LastSessionId}/messages")).GetArrayLength());
        }

        using var channel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var outbox = await new Firestore.FirestoreClient(channel).ListDocumentsAsync(new ListDocumentsRequest
        {
            Parent = $"projects/{project}/databases/(default)/documents",
            CollectionId = "outbox",
        });
        Assert.Empty(outbox.Documents);
    }

    [Fact]
    public async Task With_pubsub_down_chats_go_on_and_every_event_is_delivered_once_it_is_back_after_a_restart()
    {
        var project = $"dw-{Guid.NewGuid():N}"[..20];
        using var clients = new EmulatorClients(stack, project);
        Assert.Equal(0, (await clients.ProvisionAsync(["provision"])).ExitCode);
        var settings = new Dictionary<string, string?> { ["GOOGLE_CLOUD_PROJECT"] = project, ["PUBSUB_EMULATOR_HOST"] = "127.0.0.1:9" };

        string session;
        await using (var api = await ChatApiHost.StartAsync(stack.FirestoreHost, settings))
        {
            var chat = await ChatApiClient.SignInAsync(api.Address, "outbox-user");
            await chat.ChatAsync(new { message = "Hello there" });
            session = chat.LastSessionId!;
            await chat.ChatAsync(new { session_id = session, message = "And again" });
        }

        // Four messages kept, four events waiting in the outbox.
        using var firestoreChannel = GoogleCloudChannels.Create(stack.FirestoreHost, GoogleCloudChannels.FirestoreEndpoint);
        var firestore = new Firestore.FirestoreClient(firestoreChannel);
        var outbox = await firestore.ListDocumentsAsync(new ListDocumentsRequest
        {
            Parent = $"projects/{project}/databases/(default)/documents",
            CollectionId = "outbox",
            PageSize = 100,
        });
        Assert.Equal(4, outbox.Documents.Count);

        // Pub/Sub back, API restarted: the relay drains the outbox into the topic.
        settings["PUBSUB_EMULATOR_HOST"] = stack.PubSubHost;
        await using (await ChatApiHost.StartAsync(stack.FirestoreHost, settings))
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            do
            {
                await Task.Delay(250);
                outbox = await firestore.ListDocumentsAsync(new ListDocumentsRequest
                {
                    Parent = $"projects/{project}/databases/(default)/documents",
                    CollectionId = "outbox",
                    PageSize = 100,
                });
            }
            while (outbox.Documents.Count > 0 && DateTime.UtcNow < deadline);
            Assert.Empty(outbox.Documents);
        }

        using var pubsubChannel = GoogleCloudChannels.Create(stack.PubSubHost, GoogleCloudChannels.PubSubEndpoint);
        var subscriber = new Subscriber.SubscriberClient(pubsubChannel);
        var pulled = await subscriber.PullAsync(new PullRequest
        {
            Subscription = PubSubNames.Subscription(project, ResourceNames.ChatEventsSubscription),
            MaxMessages = 100,
        }, deadline: DateTime.UtcNow.AddSeconds(10));
        var types = pulled.ReceivedMessages
            .Where(m => m.Message.Data.ToStringUtf8().Contains(session, StringComparison.Ordinal))
            .Select(m => m.Message.Attributes["event_type"]).Order().ToList();
        Assert.Equal(["assistant_message", "assistant_message", "user_message", "user_message"], types);
    }
}
