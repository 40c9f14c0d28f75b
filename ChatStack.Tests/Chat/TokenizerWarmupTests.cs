using ChatStack.ChatApi.Agent;
using ChatStack.ChatApi.Budget;
using ChatStack.Tokenization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatStack.Tests.Chat;

/// <summary>The start-up head start on the default model's vocabulary.</summary>
public class TokenizerWarmupTests
{
    [Fact]
    public async Task Start_up_loads_the_default_models_encoding_without_waiting_for_it_and_a_failure_only_logs()
    {
        var catalog = new ModelCatalog(Options.Create(new ChatOptions()));
        var loading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var counters = new GatedCounters(loading.Task);
        using var warmup = new TokenizerWarmup(counters, catalog, NullLogger<TokenizerWarmup>.Instance);

        // The host's start does not wait for the vocabulary.
        await warmup.StartAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(warmup.ExecuteTask!.IsCompleted);

        loading.SetResult();
        await warmup.ExecuteTask.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([catalog.DefaultModel], counters.Requested);

        using var failing = new TokenizerWarmup(new GatedCounters(Task.FromException(new InvalidOperationException("no such encoding"))), catalog,
            NullLogger<TokenizerWarmup>.Instance);
        await failing.StartAsync(CancellationToken.None);
        await failing.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10)); // completes: a failed head start does not stop the host
        Assert.True(failing.ExecuteTask.IsCompletedSuccessfully);
    }

    /// <summary>A counter provider whose load takes until <paramref name="loaded"/> completes (and throws if it failed).</summary>
    private sealed class GatedCounters(Task loaded) : ITokenCounterProvider
    {
        public List<string> Requested { get; } = [];

        public ITokenCounter ForModel(string model)
        {
            Requested.Add(model);
            loaded.GetAwaiter().GetResult();
            return TokenCounterFactory.Default.ForEncoding(TokenizerEncodings.O200kBase);
        }
    }
}
