using System.Net;
using System.Net.Sockets;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ChatStack.Tests.DualWrite;

public sealed class OutboxRelayStopTests
{
    /// <summary>
    /// A stop that lands while the relay's Firestore read is in flight cancels the gRPC call, which ends in
    /// RpcException(Cancelled): that is a normal stop, not a crashed background service.
    /// </summary>
    [Fact]
    public async Task Stopping_while_the_relay_reads_the_outbox_is_a_clean_stop()
    {
        // A "Firestore" that takes the connection and never answers: the relay's first read stays in flight.
        using var firestore = new TcpListener(IPAddress.Loopback, 0);
        firestore.Start();
        var logs = new FakeLogCollector();
        var api = await ChatApiHost.StartAsync($"127.0.0.1:{((IPEndPoint)firestore.LocalEndpoint).Port}", new Dictionary<string, string?>(),
            configure: b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        TcpClient? connection = null;
        try
        {
            connection = await firestore.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            // Stopped while the connection is still open, so the read is cancelled rather than reset.
            await api.DisposeAsync();
            connection?.Dispose();
        }

        var errors = logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).Select(r => $"{r.Category}: {r.Message}").ToList();
        Assert.Empty(errors);
    }
}
