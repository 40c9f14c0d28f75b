// The one-call evaluator is marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running app;
// for reading what a resource would be launched with it is exactly right.
#pragma warning disable CS0618

using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Hosting;

/// <summary>
/// The local stack with a real model: the AppHost's parameters (user secrets, <c>Parameters__*</c>, or arguments)
/// reach the chat API as the model configuration its OpenAI-compatible path reads (ChatApiHostTests runs that path).
/// </summary>
public class LocalModelTests
{
    // Beside a developer's stack, with the model settings of each test instead of the developer's user secrets.
    private static Task<IDistributedApplicationTestingBuilder> BuilderAsync(params string[] args) =>
        DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>([.. IsolatedAppHost.Args, .. args]);

    private static async Task<Dictionary<string, string>> ChatApiEnvironmentAsync(params string[] args) =>
        await ChatApiEnvironmentAsync(await BuilderAsync(args));

    private static async Task<Dictionary<string, string>> ChatApiEnvironmentAsync(IDistributedApplicationTestingBuilder builder)
    {
        var api = AppHostModel.AllocatePortsAndFindChatApi(builder);
        return await api.GetEnvironmentVariableValuesAsync();
    }

    [Fact]
    public async Task Without_model_parameters_the_offline_model_is_the_default()
    {
        var environment = await ChatApiEnvironmentAsync();

        Assert.DoesNotContain(environment.Keys, key => key.StartsWith("Chat__", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_endpoint_without_a_key_adds_a_keyless_model_as_the_default_as_for_ollama()
    {
        var environment = await ChatApiEnvironmentAsync(
            "--Parameters:openai-endpoint=http://localhost:11434/v1/", "--Parameters:chat-model=llama3.2");

        Assert.Equal("default", environment["Chat__DefaultModel"]);
        Assert.Equal("OpenAI", environment["Chat__Models__default__Provider"]);
        Assert.Equal("llama3.2", environment["Chat__Models__default__ProviderModelId"]);
        Assert.Equal("http://localhost:11434/v1/", environment["Chat__Models__default__Endpoint"]);
        Assert.False(environment.ContainsKey("Chat__Models__default__ApiKey"));
    }

    [Fact]
    public async Task A_key_adds_openai_as_the_default_with_the_key_as_a_secret_parameter()
    {
        var builder = await BuilderAsync("--Parameters:openai-api-key=sk-test-123");
        var key = builder.Resources.OfType<ParameterResource>().Single(p => p.Name == "openai-api-key");
        Assert.True(key.Secret);

        var environment = await ChatApiEnvironmentAsync(builder);

        Assert.Equal("default", environment["Chat__DefaultModel"]);
        Assert.Equal("gpt-4o-mini", environment["Chat__Models__default__ProviderModelId"]);
        Assert.Equal("sk-test-123", environment["Chat__Models__default__ApiKey"]);
        Assert.False(environment.ContainsKey("Chat__Models__default__Endpoint")); // api.openai.com, the SDK's default
    }
}
