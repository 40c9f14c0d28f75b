using System.Collections.Concurrent;
using ChatStack.ChatApi.Budget;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using OpenAI;

namespace ChatStack.ChatApi.Agent;

/// <summary>A model as configured, with what the budget needs to know about it.</summary>
internal sealed record ModelSpec(string Name, ModelOptions Options)
{
    public string ResolveEncoding() => Options.Encoding ?? TokenCounterProvider.EncodingForModelName(Options.ProviderModelId ?? Name);
}

/// <summary>The models requests may name; the offline model is always there so the stack runs with no key.</summary>
internal sealed class ModelCatalog
{
    private readonly Dictionary<string, ModelSpec> _models = new(StringComparer.OrdinalIgnoreCase);

    public ModelCatalog(IOptions<ChatOptions> options)
    {
        var chat = options.Value;
        _models[OfflineChatCompletionService.ModelName] = new ModelSpec(OfflineChatCompletionService.ModelName,
            new ModelOptions { Provider = ModelProvider.Offline, Encoding = "o200k_base" });
        foreach (var (name, model) in chat.Models)
        {
            _models[name] = new ModelSpec(name, model);
        }

        DefaultModel = chat.DefaultModel;
        if (!_models.ContainsKey(DefaultModel))
        {
            throw new InvalidOperationException($"Chat:DefaultModel '{DefaultModel}' is not one of the configured models ({string.Join(", ", Names)}).");
        }
    }

    public string DefaultModel { get; }

    public IReadOnlyCollection<string> Names => _models.Keys;

    public IEnumerable<ModelSpec> Specs => _models.Values;

    public bool TryGet(string name, out ModelSpec spec) => _models.TryGetValue(name, out spec!);

    public ModelSpec Get(string name) => _models.TryGetValue(name, out var spec)
        ? spec
        : throw new KeyNotFoundException($"Unknown model '{name}'.");
}

/// <summary>One <see cref="IChatCompletionService"/> per configured model, made on first use.</summary>
internal sealed class ChatCompletionServices(ModelCatalog catalog, ITokenCounterProvider counters, IOptions<ChatOptions> options)
{
    // Not from IHttpClientFactory: the service defaults add a resilience handler whose 30 s total timeout and
    // retries would cut or repeat a long stream. An answer stopped early (budget, size, a client gone) disposes its
    // stream unread: with no drain the connection is closed at once and the provider stops generating (and billing),
    // where the default drain read on for up to 1 MB or 2 s and kept it going; such a connection is not reused.
    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxResponseDrainSize = 0 })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly ConcurrentDictionary<string, IChatCompletionService> _services = new(StringComparer.OrdinalIgnoreCase);

    public IChatCompletionService For(string model) => _services.GetOrAdd(model, name => Create(catalog.Get(name)));

    private IChatCompletionService Create(ModelSpec spec)
    {
        if (spec.Options.Provider == ModelProvider.Offline)
        {
            return new OfflineChatCompletionService(counters.ForModel(spec.Name), options.Value.Offline);
        }

        var clientOptions = new OpenAIClientOptions
        {
            // Streams last as long as the answer: no client-side timeout, cancellation ends them.
            Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(Http),
            NetworkTimeout = Timeout.InfiniteTimeSpan,
            // One retry for a failed connection; more would keep an SSE client waiting on a dead provider.
            RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(maxRetries: 1),
        };
        if (spec.Options.Endpoint is { } endpoint)
        {
            clientOptions.Endpoint = endpoint;
        }

        // Local servers (Ollama, vLLM) take any key; the SDK insists on one.
        var client = new OpenAIClient(new System.ClientModel.ApiKeyCredential(spec.Options.ApiKey is { Length: > 0 } key ? key : "unused"), clientOptions);
        return new OpenAIChatCompletionService(spec.Options.ProviderModelId ?? spec.Name, client);
    }
}
