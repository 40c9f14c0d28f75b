using System.Text;

namespace ChatStack.ChatApi.Streaming;

/// <summary>Writes a <see cref="ChatStream"/> to an HTTP response as <c>text/event-stream</c>, with heartbeats.</summary>
internal static class SseResponse
{
    private static readonly byte[] Heartbeat = Encoding.UTF8.GetBytes(": heartbeat\n\n");

    // Woken by the first event of a burst, the writer waits this long for the rest: a fast model's deltas then go
    // out in one write and one flush instead of a thread hop and a syscall each. A reader cannot see 1 ms.
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(1);

    public static async Task WriteAsync(HttpContext context, ChatStream stream, long afterSequence, TimeSpan heartbeat)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache, no-transform";
        // Proxies such as nginx buffer responses unless told not to: a buffered SSE stream is no stream at all.
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();

        var aborted = context.RequestAborted;
        stream.Attach();
        try
        {
            // A retry hint for EventSource-style clients, and the headers go out at once.
            await response.WriteAsync("retry: 2000\n\n", aborted);
            await response.Body.FlushAsync(aborted);
            var next = afterSequence;
            while (true)
            {
                // Frames go straight into the response's buffer: nothing per event is allocated to send it.
                var (last, completed, changed) = stream.CopyTo(response.BodyWriter, next);
                if (last != next)
                {
                    next = last;
                    if ((await response.BodyWriter.FlushAsync(aborted)).IsCompleted)
                    {
                        return;
                    }

                    continue;
                }

                if (completed)
                {
                    return;
                }

                // Idle: a comment line keeps proxies and load balancers from closing the connection. One timer per
                // wait, not a linked token source and a delay per event: at 2,000 streams that is 50,000 a second.
                try
                {
                    await changed.WaitAsync(heartbeat, aborted);
                }
                catch (TimeoutException)
                {
                    await response.Body.WriteAsync(Heartbeat, aborted);
                    await response.Body.FlushAsync(aborted);
                    continue;
                }

                await Task.Delay(Coalesce, aborted);
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away; detaching below cancels the run if nobody else reads it.
        }
        catch (IOException) when (aborted.IsCancellationRequested)
        {
        }
        finally
        {
            stream.Detach();
        }
    }
}
