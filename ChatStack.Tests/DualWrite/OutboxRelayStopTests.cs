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
        await using var firestore = new UnansweringServer();
        var logs = new FakeLogCollector();
        var api = await ChatApiHost.StartAsync(firestore.Address, new Dictionary<string, string?>(),
            configure: b => b.Logging.AddProvider(new FakeLoggerProvider(logs)));
        try
        {
            // The relay's first poll is a read of the outbox, which this server never answers.
            await firestore.Received.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            await api.DisposeAsync();
        }

        var errors = logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).Select(r => $"{r.Category}: {r.Message}").ToList();
        Assert.Empty(errors);
    }

    /// <summary>Accepts connections and reads what comes, and never answers: a call to it stays in flight.</summary>
    private sealed class UnansweringServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly TaskCompletionSource _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;

        public UnansweringServer()
        {
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public string Address => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

        public Task Received => _received.Task;

        private async Task AcceptAsync()
        {
            var connections = new List<Task>();
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    connections.Add(DrainAsync(client));
                }
            }
            catch (OperationCanceledException)
            {
            }

            await Task.WhenAll(connections);
        }

        private async Task DrainAsync(TcpClient client)
        {
            using (client)
            {
                var buffer = new byte[4096];
                try
                {
                    while (await client.GetStream().ReadAsync(buffer, _stop.Token) > 0)
                    {
                        _received.TrySetResult();
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
            _stop.Dispose();
        }
    }
}
