using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using ChatStack.ChatApi.Sessions;
using ChatStack.Tests.Support;
using Google.Cloud.Firestore.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.Chat;

/// <summary>
/// A Firestore call cut short by its own cancellation token (a client that left, a stopped turn, the API stopping)
/// reports itself through gRPC as <c>RpcException(Cancelled)</c>; the store tells it as the cancellation it is, so it is
/// never logged as our error, answered 500, or called a model failure. A CANCELLED that Firestore (or a proxy) sends
/// is the store unavailable for that call.
/// </summary>
[Collection(StackCollection.Name)]
public class CancelledStoreCallTests(StackFixture stack)
{
    private static readonly Func<IMessage, bool> MessagesRead = request => request is ListDocumentsRequest { CollectionId: "messages" };
    private static readonly Func<IMessage, bool> MessagesPaged = request => request is RunQueryRequest { StructuredQuery.From: [{ CollectionId: "messages" }] };

    private static readonly Func<IMessage, bool> RenameCommit = request => request is CommitRequest commit
        && commit.Writes.Any(w => w.UpdateMask?.FieldPaths.Contains("title") == true);

    private static readonly Func<IMessage, bool> SummaryCommit = request => request is CommitRequest commit
        && commit.Writes.Any(w => w.UpdateMask?.FieldPaths.Contains("summary") == true);

    [Fact]
    public async Task A_call_cancelled_by_its_own_token_ends_in_OperationCanceledException_and_one_the_server_cancelled_as_the_store_unavailable()
    {
        using var channel = ChatStack.GoogleCloud.GoogleCloudChannels.Create(stack.FirestoreHost, ChatStack.GoogleCloud.GoogleCloudChannels.FirestoreEndpoint);
        var client = new Firestore.FirestoreClient(channel);
        using var leave = new CancellationTokenSource();
        var request = new ListDocumentsRequest { Parent = "projects/cancelled-call/databases/(default)/documents", CollectionId = "messages" };

        // The real client, cancelled while its read is on the way: gRPC says CANCELLED.
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => FirestoreRetry.ReadAsync(async deadline =>
        {
            await leave.CancelAsync();
            return await client.ListDocumentsAsync(request, deadline: deadline, cancellationToken: leave.Token);
        }, leave.Token));

        Assert.Equal(leave.Token, cancelled.CancellationToken);
        Assert.Equal(StatusCode.Cancelled, Assert.IsType<RpcException>(cancelled.InnerException).StatusCode);

        // The same status sent by the server (or a proxy) while our token stands is no cancellation of ours: the store
        // is unavailable for this call (a 503, store_unavailable in a stream, never a 500 or a model_error), and the
        // call is not repeated, since it may have been applied.
        var attempts = 0;
        var failure = await Assert.ThrowsAsync<ChatStoreUnavailableException>(() => FirestoreRetry.CommitAsync(_ =>
        {
            attempts++;
            throw new RpcException(new Status(StatusCode.Cancelled, "cancelled by the server"));
        }, RetrySafety.Safe, FirestoreRetry.Brief, CancellationToken.None));

        Assert.Equal(StatusCode.Cancelled, Assert.IsType<RpcException>(failure.InnerException).StatusCode);
        Assert.Equal(1, attempts);
    }

    public static TheoryData<string> SessionCalls => ["GET messages", "PATCH session", "DELETE session"];

    [Theory]
    [MemberData(nameof(SessionCalls))]
    public async Task A_client_that_leaves_during_a_session_endpoints_store_call_is_no_error_and_no_500(string call)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b =>
        {
            b.Logging.AddProvider(new FakeLoggerProvider(logs));
            b.Services.AddHttpContextAccessor();
        });
        using var requests = new MetricCollector<double>(host.Services.GetRequiredService<IMeterFactory>(), "Microsoft.AspNetCore.Hosting", "http.server.request.duration");
        var client = await ChatApiClient.SignInAsync(host.Address, $"leaves-{call.Replace(' ', '-')}");
        await client.ChatAsync(new { message = "hello" });
        var sessionId = client.LastSessionId!;
        logs.Clear();

        var (method, matches) = call switch
        {
            "GET messages" => (HttpMethod.Get, MessagesPaged),
            "PATCH session" => (HttpMethod.Patch, RenameCommit),
            _ => (HttpMethod.Delete, MessagesRead),
        };
        using var leave = new CancellationTokenSource();
        var ended = LeaveDuring(host, faults, matches, leave);
        var request = new HttpRequestMessage(method, call == "GET messages" ? $"/api/sessions/{sessionId}/messages" : $"/api/sessions/{sessionId}");
        if (method == HttpMethod.Patch)
        {
            request.Content = JsonContent.Create(new { title = "renamed" });
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.Http.SendAsync(request, leave.Token));
        await ended.Task;

        // Not our failure: no error logged, no problem answered (the relay's warnings about this host's absent Pub/Sub
        // are not the request's), and the request is recorded as a client that left.
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Error || r.Category == "ChatStack.ChatApi.Problems");
        var measured = await MeasuredAsync(requests, method.Method);
        Assert.Equal(StatusCodes.Status499ClientClosedRequest, Convert.ToInt32(measured.Tags["http.response.status_code"]));
        Assert.False(measured.Tags.ContainsKey("error.type"), $"error.type {measured.Tags.GetValueOrDefault("error.type")}");

        // Nothing was changed or left claimed: the session is as it was and takes its next message.
        Assert.Equal("hello", (await client.GetJsonAsync($"/api/sessions/{sessionId}")).GetProperty("title").GetString());
        Assert.Equal("done", (await client.ChatAsync(new { session_id = sessionId, message = "still here" }))[^1].Event);
    }

    public static TheoryData<string> StopSources => ["stop endpoint", "app stopping"];

    [Theory]
    [MemberData(nameof(StopSources))]
    public async Task A_summary_save_cut_short_by_the_turns_stop_ends_it_cancelled_not_as_a_model_error(string source)
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, $"stopped-at-summary-{source.Replace(' ', '-')}");
        const string model = "chatstack-offline-small-context";
        await client.ChatAsync(new { message = "My boat is called Periwinkle. Tell me about boats.", model });
        var sessionId = client.LastSessionId!;

        // The first summary's commit waits until its turn is stopped, then goes on with the turn's token cancelled.
        var streamOfTurn = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stopped = false;
        faults.Before(SummaryCommit, async () =>
        {
            stopped = true;
            if (source == "app stopping")
            {
                host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
                return;
            }

            using var stop = await client.Http.PostAsync($"/api/chat/streams/{await streamOfTurn.Task}/cancel", null);
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        });

        List<SseMessage> events = [];
        for (var turn = 1; turn < 10 && !stopped; turn++)
        {
            streamOfTurn = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var response = await client.PostChatAsync(new { session_id = sessionId, message = $"Turn {turn}: tell me about topic number {turn}.", model });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            streamOfTurn.SetResult(response.Headers.GetValues("X-Stream-Id").Single());
            events = await Sse.ReadAllAsync(response);
        }

        Assert.True(stopped, "the small-context model summarizes within ten turns");
        Assert.DoesNotContain(events, e => e.Event == "error");
        Assert.Equal("done", events[^1].Event);
        Assert.Equal("cancelled", events[^1].Payload.GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Error);
        // The turn was stopped before its answer: what it kept is its user message and an empty cancelled answer.
        var last = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().Last();
        Assert.Equal("cancelled", last.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task A_chat_whose_first_save_the_API_stopping_cut_short_is_told_to_send_again_with_503_not_a_500()
    {
        var logs = new FakeLogCollector();
        var faults = new FirestoreFaults();
        await using var host = await ChatApiHost.StartWithFaultsAsync(stack.FirestoreHost, faults, b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        var client = await ChatApiClient.SignInAsync(host.Address, "stopped-before-first-save");
        var project = host.Services.GetRequiredService<ChatStack.GoogleCloud.GoogleCloudOptions>().ProjectId;
        // The first commit (the new session with its user message) goes on after the API began to stop.
        faults.Before(FirestoreFaults.MessageCommit("user"), () =>
        {
            host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
            return Task.CompletedTask;
        });

        using var response = await client.PostChatAsync(new { message = "hello" });

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode} {body}");
        Assert.Equal("shutting-down", System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
        Assert.Equal("1", response.Headers.RetryAfter?.ToString());
        Assert.False(response.Headers.Contains("X-Stream-Id"));
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Error);
        // Nothing was kept: no session in this host's project.
        using var channel = ChatStack.GoogleCloud.GoogleCloudChannels.Create(stack.FirestoreHost, ChatStack.GoogleCloud.GoogleCloudChannels.FirestoreEndpoint);
        var sessions = await new Firestore.FirestoreClient(channel).ListDocumentsAsync(new ListDocumentsRequest
        {
            Parent = $"projects/{project}/databases/(default)/documents",
            CollectionId = "sessions",
        });
        Assert.Empty(sessions.Documents);
    }

    /// <summary>
    /// When the next call <paramref name="matches"/> picks is about to leave, the client hangs up (<paramref name="leave"/>)
    /// and the call goes on once the server has seen it go, so it meets the aborted request as it would in production.
    /// Completes when the server is done with that request.
    /// </summary>
    private static TaskCompletionSource LeaveDuring(ChatApiHost host, FirestoreFaults faults, Func<IMessage, bool> matches, CancellationTokenSource leave)
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var accessor = host.Services.GetRequiredService<IHttpContextAccessor>();
        faults.Before(matches, async () =>
        {
            var request = accessor.HttpContext!;
            request.Response.OnCompleted(() =>
            {
                ended.SetResult();
                return Task.CompletedTask;
            });
            var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var registration = request.RequestAborted.Register(() => aborted.SetResult());
            await leave.CancelAsync();
            await aborted.Task;
        });
        return ended;
    }

    /// <summary>The server's record of the one request made with <paramref name="method"/> (the test's others are POSTs and GETs of other routes).</summary>
    private static async Task<CollectedMeasurement<double>> MeasuredAsync(MetricCollector<double> requests, string method)
    {
        // Recorded as the server lets go of the request, just after its response completed.
        while (true)
        {
            var snapshot = requests.GetMeasurementSnapshot();
            if (snapshot.FirstOrDefault(m => Equals(m.Tags.GetValueOrDefault("http.request.method"), method)
                && Equals(m.Tags.GetValueOrDefault("http.route"), method == "GET" ? "/api/sessions/{sessionId}/messages" : "/api/sessions/{sessionId}")) is { } measured)
            {
                return measured;
            }

            await requests.WaitForMeasurementsAsync(snapshot.Count + 1);
        }
    }
}
