using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Chat;

/// <summary>The chat protocol over real HTTP against the AppHost's chat-api (real Firestore emulator, offline model).</summary>
[Collection(StackCollection.Name)]
public class ChatProtocolTests(StackFixture stack, ITestOutputHelper output)
{
    private static readonly string[] PhaseOrder = ["ingress", "retrieval", "model_stream", "tool", "finalize"];

    private Task<ChatApiClient> SignInAsync(string? user = null) =>
        ChatApiClient.SignInAsync(stack.App.GetEndpoint("chat-api", "http"), user ?? $"user-{Guid.NewGuid():N}"[..20]);

    [Fact]
    public async Task A_chat_streams_every_phase_in_order_with_tools_and_a_50_token_cadence_then_reads_back()
    {
        var client = await SignInAsync();
        var events = await client.ChatAsync(new { message = "What time is it in Tokyo, and what is (12.5 + 3) * 4? Please explain at length." });

        var types = events.Select(e => e.Event).ToList();
        output.WriteLine(string.Join(' ', types.Where(t => t != "message_delta")));
        Assert.All(events, e => Assert.Equal(e.Event, e.EnvelopeType));
        Assert.All(events, e => Assert.NotNull(e.Id));
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());

        var counts = events.Where(e => e.Event == "token_count").Select(e => e.Payload).ToList();
        var phases = counts.Select(c => c.GetProperty("phase").GetString()!).ToList();
        Assert.Equal("ingress", phases[0]);
        Assert.Equal("retrieval", phases[1]);
        Assert.Equal("finalize", phases[^1]);
        Assert.Single(phases, p => p == "finalize");
        Assert.Contains("model_stream", phases);
        Assert.Equal(4, phases.Count(p => p == "tool")); // two tools, a start and an end each
        Assert.True(phases.Select(p => Array.IndexOf(PhaseOrder, p)).Zip(phases.Skip(1).Select(p => Array.IndexOf(PhaseOrder, p)))
            .All(pair => pair.Second >= pair.First || (pair.First == 3 && pair.Second == 2)), string.Join(",", phases));
        foreach (var count in counts)
        {
            foreach (var field in new[] { "prompt", "completion", "total", "remaining", "budget_max", "ts", "phase" })
            {
                Assert.True(count.TryGetProperty(field, out _), $"token_count lacks {field}");
            }

            Assert.Equal(count.GetProperty("prompt").GetInt32() + count.GetProperty("completion").GetInt32(), count.GetProperty("total").GetInt32());
        }

        // Tools: start then end, with name, arguments, result summary, duration and status.
        var starts = events.Where(e => e.Event == "tool_start").Select(e => e.Payload).ToList();
        var ends = events.Where(e => e.Event == "tool_end").Select(e => e.Payload).ToList();
        Assert.Equal(["time_now", "calculate"], starts.Select(s => s.GetProperty("name").GetString()));
        Assert.Equal("Asia/Tokyo", starts[0].GetProperty("arguments").GetProperty("time_zone").GetString());
        Assert.Equal("62", ends[1].GetProperty("result_summary").GetString());
        Assert.All(ends, e => Assert.Equal("ok", e.GetProperty("status").GetString()));
        Assert.All(ends, e => Assert.True(e.GetProperty("duration_ms").GetDouble() >= 0));

        // The model_stream cadence: one about every 50 completion tokens.
        var streamCompletions = counts.Where(c => c.GetProperty("phase").GetString() == "model_stream").Select(c => c.GetProperty("completion").GetInt32()).ToList();
        output.WriteLine($"model_stream at completion = {string.Join(", ", streamCompletions)}");
        Assert.True(streamCompletions.Count >= 3, "a long answer crosses several checkpoints");
        foreach (var (previous, next) in streamCompletions.Zip(streamCompletions.Skip(1)))
        {
            Assert.InRange(next - previous, 40, 70);
        }

        // done: ids, final usage, finish reason; the text is what the deltas said.
        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("done", types[^1]);
        Assert.Equal("stop", done.GetProperty("finish_reason").GetString());
        var usage = done.GetProperty("usage");
        Assert.Equal(counts[^1].GetProperty("total").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
        // The offline model bills like a provider (each call's whole input): the count, re-sent context included,
        // agrees with it to the token, and the prompt does not jump at finalize.
        var reconciliation = done.GetProperty("reconciliation");
        Assert.Equal(0, reconciliation.GetProperty("delta").GetInt32());
        Assert.Equal(reconciliation.GetProperty("provider_total").GetInt32(), reconciliation.GetProperty("counted_total").GetInt32());
        Assert.Equal(counts.Last(c => c.GetProperty("phase").GetString() == "tool").GetProperty("prompt").GetInt32(), usage.GetProperty("prompt_tokens").GetInt32());
        var text = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));
        Assert.Contains("62", text);

        var sessionId = done.GetProperty("session_id").GetString()!;
        var session = await client.GetJsonAsync($"/api/sessions/{sessionId}");
        Assert.Equal(usage.GetProperty("total_tokens").GetInt32(), session.GetProperty("total_tokens").GetInt32());
        var messages = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().ToList();
        Assert.Equal(["user", "tool", "tool", "assistant"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(text, messages[^1].GetProperty("content").GetString());
        Assert.Equal(done.GetProperty("assistant_message_id").GetString(), messages[^1].GetProperty("id").GetString());
    }

    [Fact]
    public async Task A_second_message_continues_the_session_and_history_search_finds_the_first()
    {
        var client = await SignInAsync();
        var first = await client.ChatAsync(new { message = "My favourite colour is ultramarine." });
        var sessionId = first.Single(e => e.Event == "done").Payload.GetProperty("session_id").GetString();
        var second = await client.ChatAsync(new { session_id = sessionId, message = "Search the conversation for colour" });
        var toolEnd = Assert.Single(second, e => e.Event == "tool_end").Payload;
        Assert.Equal("search_history", toolEnd.GetProperty("name").GetString());
        Assert.Contains("ultramarine", toolEnd.GetProperty("result_summary").GetString());
        var retrieval = second.First(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "retrieval").Payload;
        var ingress = second.First(e => e.Event == "token_count").Payload;
        Assert.True(retrieval.GetProperty("prompt").GetInt32() > ingress.GetProperty("prompt").GetInt32(), "history was loaded");
    }

    [Fact]
    public async Task A_session_answers_one_message_at_a_time_and_a_second_send_meanwhile_is_a_409_naming_the_running_stream()
    {
        var client = await SignInAsync();
        using var first = await client.PostChatAsync(new { message = "Tell me a long story about queues." });
        first.EnsureSuccessStatusCode();
        var sessionId = first.Headers.GetValues("X-Session-Id").Single();
        var streamId = first.Headers.GetValues("X-Stream-Id").Single();
        await using var body = await first.Content.ReadAsStreamAsync();
        var events = Sse.ReadAsync(body).GetAsyncEnumerator();
        while (await events.MoveNextAsync() && events.Current.Event != "message_delta")
        {
        }

        // Another user is not told that the session exists, let alone that it is busy.
        var other = await SignInAsync();
        using (var foreign = await other.PostChatAsync(new { session_id = sessionId, message = "me too" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        using (var second = await client.PostChatAsync(new { session_id = sessionId, message = "And another thing." }))
        {
            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
            Assert.Equal("application/problem+json", second.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("turn-in-progress", problem.GetProperty("code").GetString());
            Assert.Equal(streamId, problem.GetProperty("stream_id").GetString());
            Assert.Equal(sessionId, problem.GetProperty("session_id").GetString());
            Assert.Contains($"/api/chat/streams/{streamId}", problem.GetProperty("detail").GetString());
        }

        var finish = "";
        while (await events.MoveNextAsync())
        {
            if (events.Current.Event == "done")
            {
                finish = events.Current.Payload.GetProperty("finish_reason").GetString()!;
            }
        }

        Assert.Equal("stop", finish); // the refused send did not disturb the running turn
        var next = await client.ChatAsync(new { session_id = sessionId, message = "And another thing." });
        Assert.Equal("done", next[^1].Event);

        var messages = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray()
            .Select(m => (m.GetProperty("role").GetString(), m.GetProperty("content").GetString())).ToList();
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m.Item1));
        Assert.Equal("And another thing.", messages[2].Item2); // saved once: the refused send left nothing
    }

    [Fact]
    public async Task Hanging_up_and_sending_at_once_stops_the_abandoned_turn_and_waits_for_it_to_save()
    {
        var client = await SignInAsync();
        string sessionId;
        using (var response = await client.PostChatAsync(new { message = "Write a long essay about stopping." }))
        {
            sessionId = response.Headers.GetValues("X-Session-Id").Single();
            await using var body = await response.Content.ReadAsStreamAsync();
            var deltas = 0;
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (message.Event == "message_delta" && ++deltas == 5)
                {
                    break;
                }
            }
        }

        // Sent as soon as the connection is gone: no 409 for the reconnect grace, the turn nobody reads is stopped at
        // once, and the send waits while it saves its partial answer.
        var next = await client.ChatAsync(new { session_id = sessionId, message = "Shorter, please." });
        Assert.Equal("done", next[^1].Event);

        var messages = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().ToList();
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("cancelled", messages[1].GetProperty("finish_reason").GetString());
        // The new turn read the stopped one's answer: its history holds all three earlier messages.
        var retrieval = next.First(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "retrieval").Payload;
        var ingress = next.First(e => e.Event == "token_count").Payload;
        var earlier = messages.Take(2).Sum(m => m.GetProperty("tokens").GetInt32());
        Assert.True(retrieval.GetProperty("prompt").GetInt32() - ingress.GetProperty("prompt").GetInt32() >= earlier,
            $"history of {earlier} tokens was loaded");
    }

    [Fact]
    public async Task A_budget_exhausted_mid_answer_stops_and_keeps_what_was_said()
    {
        var client = await SignInAsync();
        var events = await client.ChatAsync(new { message = "Write a long essay about caching.", budget_max = 150 });
        var done = events.Single(e => e.Event == "done").Payload;
        Assert.Equal("budget_exhausted", done.GetProperty("finish_reason").GetString());
        var text = string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString()));
        Assert.NotEmpty(text);
        var finalize = events.Last(e => e.Event == "token_count").Payload;
        Assert.Equal("finalize", finalize.GetProperty("phase").GetString());
        Assert.Equal(0, finalize.GetProperty("remaining").GetInt32());
        Assert.InRange(finalize.GetProperty("total").GetInt32(), 150, 160); // stops within one delta of the budget
        var messages = (await client.GetJsonAsync($"/api/sessions/{done.GetProperty("session_id").GetString()}/messages")).EnumerateArray().ToList();
        Assert.Equal(text, messages[^1].GetProperty("content").GetString());
        Assert.Equal("budget_exhausted", messages[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task A_dropped_connection_resumes_with_Last_Event_ID_while_the_answer_goes_on_and_replays_after_it_ended()
    {
        var client = await SignInAsync();
        string streamId;
        var firstPart = new List<SseMessage>();
        using (var response = await client.PostChatAsync(new { message = "Write a long essay about flaky networks." }))
        {
            response.EnsureSuccessStatusCode();
            streamId = response.Headers.GetValues("X-Stream-Id").Single();
            await using var body = await response.Content.ReadAsStreamAsync();
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (!message.IsComment)
                {
                    firstPart.Add(message);
                }

                if (firstPart.Count == 10)
                {
                    break;
                }
            }
        }

        // The only reader is gone (its connection closed); it comes back well within the grace.
        await Task.Delay(300);
        var resume = new HttpRequestMessage(HttpMethod.Get, $"/api/chat/streams/{streamId}");
        resume.Headers.Add("Last-Event-ID", firstPart[^1].Id);
        using var resumed = await client.Http.SendAsync(resume, HttpCompletionOption.ResponseHeadersRead);
        resumed.EnsureSuccessStatusCode();
        var rest = await Sse.ReadAllAsync(resumed);
        Assert.Equal($"{streamId}.11", rest[0].Id);
        var sequences = firstPart.Concat(rest).Select(e => long.Parse(e.Id!.Split('.')[1])).ToList();
        Assert.Equal(Enumerable.Range(1, sequences.Count).Select(i => (long)i), sequences);
        // The whole answer, not the tail of a cancelled run.
        Assert.Equal("stop", rest.Single(e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());
        Assert.True(rest.Count(e => e.Event == "message_delta") > 100, "the answer went on streaming after the reconnect");

        // After it finished, the same POST with Last-Event-ID replays the tail too.
        var again = new HttpRequestMessage(HttpMethod.Post, "/api/chat") { Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json") };
        again.Headers.Add("Last-Event-ID", firstPart[4].Id);
        using var replay = await client.Http.SendAsync(again, HttpCompletionOption.ResponseHeadersRead);
        replay.EnsureSuccessStatusCode();
        var replayed = await Sse.ReadAllAsync(replay);
        Assert.Equal($"{streamId}.6", replayed[0].Id);
        Assert.Equal("done", replayed[^1].Event);

        // From the last id there is nothing more; an id past it was never sent.
        var last = sequences.Count;
        foreach (var (id, status, events) in new[] { ($"{streamId}.{last}", HttpStatusCode.OK, 0), ($"{streamId}.{last + 1}", HttpStatusCode.BadRequest, 0) })
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"/api/chat/streams/{streamId}") { Headers = { { "Last-Event-ID", id } } };
            using var answered = await client.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(status, answered.StatusCode);
            if (status == HttpStatusCode.OK)
            {
                Assert.Equal(events, (await Sse.ReadAllAsync(answered)).Count);
            }
            else
            {
                Assert.Contains($"past the last event this stream has sent ({streamId}.{last})", await answered.Content.ReadAsStringAsync());
            }
        }

        // Another user cannot read it.
        var other = await SignInAsync();
        var foreign = new HttpRequestMessage(HttpMethod.Get, $"/api/chat/streams/{streamId}");
        using var refused = await other.Http.SendAsync(foreign);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
    }

    [Fact]
    public async Task Cancelling_a_stream_stops_the_answer_now_and_keeps_what_was_said()
    {
        var client = await SignInAsync();
        using var response = await client.PostChatAsync(new { message = "Write a long essay about stopping early." });
        response.EnsureSuccessStatusCode();
        var streamId = response.Headers.GetValues("X-Stream-Id").Single();
        var sessionId = response.Headers.GetValues("X-Session-Id").Single();
        var events = new List<SseMessage>();
        var cancelled = false;
        await using (var body = await response.Content.ReadAsStreamAsync())
        {
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (message.IsComment)
                {
                    continue;
                }

                events.Add(message);
                if (!cancelled && events.Count(e => e.Event == "message_delta") == 5)
                {
                    // Someone else's cancel finds nothing; the owner's stops the run while this reader still reads.
                    var other = await SignInAsync();
                    using (var foreign = await other.Http.PostAsync($"/api/chat/streams/{streamId}/cancel", null))
                    {
                        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
                    }

                    using var cancel = await client.Http.PostAsync($"/api/chat/streams/{streamId}/cancel", null);
                    Assert.Equal(HttpStatusCode.NoContent, cancel.StatusCode);
                    cancelled = true;
                }
            }
        }

        var done = Assert.Single(events, e => e.Event == "done").Payload;
        Assert.Equal("cancelled", done.GetProperty("finish_reason").GetString());
        Assert.True(events.Count(e => e.Event == "message_delta") < 300, "the long answer was cut short");
        var messages = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().ToList();
        Assert.Equal("cancelled", messages[^1].GetProperty("finish_reason").GetString());
        Assert.Equal(string.Concat(events.Where(e => e.Event == "message_delta").Select(e => e.Payload.GetProperty("text").GetString())),
            messages[^1].GetProperty("content").GetString());

        // Cancelling an ended stream changes nothing; an unknown one is not found.
        using (var again = await client.Http.PostAsync($"/api/chat/streams/{streamId}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        }

        using var unknown = await client.Http.PostAsync("/api/chat/streams/0123456789abcdef0123456789abcdef/cancel", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("stream-not-found", JsonDocument.Parse(await unknown.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_the_model_call_and_the_partial_answer_is_kept()
    {
        var client = await SignInAsync();
        string sessionId;
        var deltas = 0;
        using (var response = await client.PostChatAsync(new { message = "Write a long essay about disconnects." }))
        {
            sessionId = response.Headers.GetValues("X-Session-Id").Single();
            await using var body = await response.Content.ReadAsStreamAsync();
            await foreach (var message in Sse.ReadAsync(body))
            {
                if (message.Event == "message_delta" && ++deltas == 5)
                {
                    break;
                }
            }
        }

        // Once no reader has come back for the reconnect grace, the run stops the model and persists what it had.
        JsonElement last = default;
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var messages = (await client.GetJsonAsync($"/api/sessions/{sessionId}/messages")).EnumerateArray().ToList();
            if (messages.Count == 2)
            {
                last = messages[^1];
                break;
            }

            await Task.Delay(100);
        }

        Assert.Equal("assistant", last.GetProperty("role").GetString());
        Assert.Equal("cancelled", last.GetProperty("finish_reason").GetString());
        var content = last.GetProperty("content").GetString()!;
        Assert.NotEmpty(content);
        output.WriteLine($"kept {content.Length} characters, {last.GetProperty("tokens").GetInt32()} tokens after a disconnect at delta 5");
        // The whole answer is ~1,000 tokens over ~8 s; cancelled after the stack's 2 s grace, it keeps about a quarter.
        Assert.True(last.GetProperty("tokens").GetInt32() < 500, "the long answer was cut short");
        // The session totals are updated right after the message: what was generated is counted.
        var completionTokens = 0;
        for (var attempt = 0; attempt < 50 && completionTokens == 0; attempt++)
        {
            completionTokens = (await client.GetJsonAsync($"/api/sessions/{sessionId}")).GetProperty("completion_tokens").GetInt32();
            await Task.Delay(completionTokens == 0 ? 100 : 0);
        }

        Assert.True(completionTokens >= last.GetProperty("tokens").GetInt32(), "what was generated is counted");
    }

    [Fact]
    public async Task History_past_the_context_share_is_summarized_keeping_the_newest_turns()
    {
        var client = await SignInAsync();
        string? sessionId = null;
        List<SseMessage>? summarizedTurn = null;
        for (var turn = 0; turn < 8 && summarizedTurn is null; turn++)
        {
            var events = await client.ChatAsync(new { session_id = sessionId, message = $"Turn {turn}: tell me about topic number {turn}.", model = "chatstack-offline-small-context" });
            sessionId = events.Single(e => e.Event == "done").Payload.GetProperty("session_id").GetString();
            if (events.Any(e => e.Event == "summarized"))
            {
                summarizedTurn = events;
            }
        }

        Assert.NotNull(summarizedTurn);
        var types = summarizedTurn.Where(e => e.Event != "message_delta").Select(e => e.Event == "token_count" ? e.Payload.GetProperty("phase").GetString() : e.Event).ToList();
        output.WriteLine(string.Join(' ', types));
        var retrievals = summarizedTurn.Where(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "retrieval").Select(e => e.Payload).ToList();
        Assert.True(retrievals[0].GetProperty("should_summarize").GetBoolean());
        var summarized = summarizedTurn.Single(e => e.Event == "summarized").Payload;
        Assert.Equal(4, summarized.GetProperty("kept_messages").GetInt32());
        Assert.True(summarized.GetProperty("tokens_after").GetInt32() < summarized.GetProperty("tokens_before").GetInt32());
        // Summarized before the model call: the summary event precedes every delta.
        Assert.True(summarizedTurn.FindIndex(e => e.Event == "summarized") < summarizedTurn.FindIndex(e => e.Event == "message_delta"));
        var session = await client.GetJsonAsync($"/api/sessions/{sessionId}");
        Assert.StartsWith("Summary of the earlier conversation", session.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task A_long_conversation_on_the_default_model_and_budget_is_summarized_and_goes_on()
    {
        // The default model's window (128,000) is far beyond the default budget (8,000): the history is summarized
        // past half the budget, so the conversation goes on where it would have been refused as budget_too_small.
        var client = await SignInAsync();
        string? sessionId = null;
        var turns = new List<List<SseMessage>>();
        while (turns.Count < 60 && !turns.Any(t => t.Any(e => e.Event == "summarized")))
        {
            // Long notes to keep, short answers: the history grows fast while the offline model streams little.
            var notes = string.Concat(Enumerable.Range(0, 40).Select(i => $"Note {turns.Count}.{i}: the delivery for warehouse {i} leaves at {i % 12 + 1} o'clock. "));
            var events = await client.ChatAsync(new { session_id = sessionId, message = $"Please keep these notes. {notes}" });
            var done = events.LastOrDefault(e => e.Event is "done" or "error");
            Assert.True(done?.Event == "done", $"Turn {turns.Count} ended {done?.Event}: {done?.Data}");
            sessionId = done!.Payload.GetProperty("session_id").GetString();
            turns.Add(events);
        }

        var summarizedTurn = turns[^1];
        output.WriteLine($"summarized at turn {turns.Count - 1}");
        var retrieval = Retrievals(summarizedTurn)[0];
        Assert.Equal(8000, retrieval.GetProperty("budget_max").GetInt32());
        Assert.True(retrieval.GetProperty("should_summarize").GetBoolean());
        Assert.InRange(retrieval.GetProperty("prompt").GetInt32(), 4001, 8000);
        Assert.Equal("stop", summarizedTurn.Single(e => e.Event == "done").Payload.GetProperty("finish_reason").GetString());

        var next = await client.ChatAsync(new { session_id = sessionId, message = "And one more, please." });
        Assert.Equal("done", next.Last(e => !e.IsComment).Event);
        Assert.InRange(Retrievals(next)[0].GetProperty("prompt").GetInt32(), 1, 4000);
        Assert.DoesNotContain(next, e => e.Event == "summarized");

        static List<JsonElement> Retrievals(List<SseMessage> events) =>
            events.Where(e => e.Event == "token_count" && e.Payload.GetProperty("phase").GetString() == "retrieval").Select(e => e.Payload).ToList();
    }

    [Fact]
    public async Task Bad_input_gets_a_problem_response_before_any_token_is_spent()
    {
        var client = await SignInAsync();
        var mine = (await client.ChatAsync(new { message = "hello" })).Single(e => e.Event == "done").Payload.GetProperty("session_id").GetString();
        var openApi = await OpenApiContract.LoadAsync(client.Http);

        async Task Expect(HttpStatusCode status, string code, Func<Task<HttpResponseMessage>> send)
        {
            using var response = await send();
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(status == response.StatusCode, $"{code}: expected {(int)status}, got {(int)response.StatusCode} {body}");
            openApi.AssertDeclares(response);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(body).RootElement;
            Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
            if (code.Length > 0)
            {
                Assert.Equal(code, problem.GetProperty("code").GetString());
            }
        }

        await Expect(HttpStatusCode.BadRequest, "malformed-json", () => client.PostRawAsync("{\"message\": \"hi\""));
        await Expect(HttpStatusCode.BadRequest, "invalid-body", () => client.PostRawAsync("{\"message\": \"hi\", \"budget_max\": \"lots\"}"));
        await Expect(HttpStatusCode.UnsupportedMediaType, "unsupported-media-type", () => client.PostRawAsync("message=hi", contentType: "application/x-www-form-urlencoded"));
        await Expect(HttpStatusCode.BadRequest, "empty-message", () => client.PostChatAsync(new { message = "   " }));
        await Expect(HttpStatusCode.BadRequest, "empty-message", () => client.PostChatAsync(new { session_id = mine }));
        await Expect(HttpStatusCode.RequestEntityTooLarge, "message-too-large", () => client.PostChatAsync(new { message = new string('x', 16_001) }));
        await Expect(HttpStatusCode.RequestEntityTooLarge, "request-too-large", () => client.PostChatAsync(new { message = "hi", padding = new string('x', 70_000) }));
        await Expect(HttpStatusCode.NotFound, "session-not-found", () => client.PostChatAsync(new { session_id = "no-such-session", message = "hi" }));
        await Expect(HttpStatusCode.BadRequest, "invalid-session-id", () => client.PostChatAsync(new { session_id = "../etc/passwd", message = "hi" }));
        await Expect(HttpStatusCode.BadRequest, "invalid-session-id", () => client.PostChatAsync(new { session_id = "__reserved__", message = "hi" }));
        await Expect(HttpStatusCode.BadRequest, "budget-out-of-range", () => client.PostChatAsync(new { message = "hi", budget_max = 0 }));
        await Expect(HttpStatusCode.BadRequest, "budget-out-of-range", () => client.PostChatAsync(new { message = "hi", budget_max = 10_000_000 }));
        await Expect(HttpStatusCode.BadRequest, "budget-too-small", () => client.PostChatAsync(new { message = string.Join(' ', Enumerable.Repeat("word", 100)), budget_max = 64 }));
        await Expect(HttpStatusCode.BadRequest, "unknown-model", () => client.PostChatAsync(new { message = "hi", model = "gpt-imaginary" }));
        await Expect(HttpStatusCode.BadRequest, "invalid-session-id", () => client.Http.GetAsync("/api/sessions/bad.id"));
        await Expect(HttpStatusCode.NotFound, "session-not-found", () => client.Http.GetAsync("/api/sessions/unknown-session/messages"));
        await Expect(HttpStatusCode.BadRequest, "invalid-last-event-id", () => client.Http.GetAsync("/api/chat/streams/abc").ContinueWith(_ =>
            client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/chat/streams/abc") { Headers = { { "Last-Event-ID", "garbage" } } })).Unwrap());

        // Another user's session is invisible, and the body cannot choose the user.
        var other = await SignInAsync();
        await Expect(HttpStatusCode.NotFound, "session-not-found", () => other.Http.GetAsync($"/api/sessions/{mine}"));
        await Expect(HttpStatusCode.NotFound, "session-not-found", () => other.PostChatAsync(new { session_id = mine, message = "hi" }));
        await Expect(HttpStatusCode.BadRequest, "invalid-body", () => other.PostChatAsync(new { session_id = mine, message = "hi", user_id = "the-owner" }));

        // No token, no chat.
        using var anonymous = stack.App.CreateHttpClient("chat-api");
        using var unauthorized = await anonymous.PostAsync("/api/chat", new StringContent("{\"message\":\"hi\"}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
        openApi.AssertDeclares(unauthorized);

        // None of that spent anything: the session still has just its first exchange.
        var session = await client.GetJsonAsync($"/api/sessions/{mine}");
        Assert.Equal(2, session.GetProperty("message_count").GetInt32());
    }

    [Fact]
    public async Task The_apphost_hands_the_chat_api_a_generated_signing_key()
    {
        var model = stack.App.Services.GetRequiredService<DistributedApplicationModel>();
        var api = model.Resources.OfType<ProjectResource>().Single(r => r.Name == "chat-api");
#pragma warning disable CS0618 // reading what the resource was launched with
        var environment = await api.GetEnvironmentVariableValuesAsync();
#pragma warning restore CS0618
        Assert.True(environment["Identity__SigningKey"].Length >= 48);
    }

    [Fact]
    public async Task The_model_list_names_what_a_chat_may_ask_for_and_a_listed_model_is_used()
    {
        using (var anonymous = ChatApiClient.CreateHttpClient(stack.App.GetEndpoint("chat-api", "http")))
        using (var refused = await anonymous.GetAsync("/api/models"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var client = await SignInAsync();
        var list = await client.GetJsonAsync("/api/models");
        var models = list.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal("chatstack-offline-deterministic", list.GetProperty("default_model").GetString());
        Assert.Contains(list.GetProperty("default_model").GetString()!, models.Keys);
        var small = models["chatstack-offline-small-context"];
        Assert.Equal("offline", small.GetProperty("provider").GetString());
        Assert.Equal("o200k_base", small.GetProperty("encoding").GetString());
        Assert.Equal(700, small.GetProperty("context_window").GetInt32());
        Assert.True(small.GetProperty("max_output_tokens").GetInt32() > 0);

        // Every listed name is one a chat may send: its done event reports it as the model used.
        foreach (var name in models.Keys)
        {
            var done = (await client.ChatAsync(new { message = "hello", model = name })).Single(e => e.Event == "done").Payload;
            Assert.Equal(name, done.GetProperty("usage").GetProperty("model").GetString());
        }
    }

    [Fact]
    public async Task The_openapi_document_describes_the_json_endpoints()
    {
        using var http = stack.App.CreateHttpClient("chat-api");
        var document = JsonDocument.Parse(await http.GetStringAsync("/openapi/v1.json")).RootElement;
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/api/chat", "/api/models", "/api/sessions/{sessionId}", "/api/sessions/{sessionId}/messages", "/api/chat/streams/{streamId}" })
        {
            Assert.True(paths.TryGetProperty(path, out _), path);
        }

        Assert.True(paths.GetProperty("/api/sessions/{sessionId}").TryGetProperty("delete", out _), "DELETE /api/sessions/{sessionId}");
        Assert.True(paths.GetProperty("/api/sessions/{sessionId}").GetProperty("patch").GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _),
            "PATCH /api/sessions/{sessionId} takes JSON");
        Assert.True(document.GetProperty("components").GetProperty("schemas").GetProperty("SessionUpdate").GetProperty("properties").TryGetProperty("title", out _));
        Assert.Equal("bearer", document.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer").GetProperty("scheme").GetString());
        var chatRequest = document.GetProperty("components").GetProperty("schemas").GetProperty("ChatRequest").GetProperty("properties");
        foreach (var field in new[] { "session_id", "message", "model", "budget_max" })
        {
            Assert.True(chatRequest.TryGetProperty(field, out _), field);
        }
    }
}
