// The one-call evaluator is marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running app;
// for reading what a resource would be launched with it is exactly right.
#pragma warning disable CS0618

using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Hosting;

/// <summary>The local stack hands the chat API its keys as secret parameters the AppHost generates, never as constants.</summary>
public class ChatApiSecretsTests
{
    private static Task<IDistributedApplicationTestingBuilder> BuilderAsync() =>
        DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);

    /// <summary>What each variable of the chat API is set to, as the model holds it: a string, a parameter, an expression.</summary>
    private static async Task<Dictionary<string, object>> RawEnvironmentAsync(IDistributedApplicationTestingBuilder builder, ProjectResource api)
    {
        var context = new EnvironmentCallbackContext(builder.ExecutionContext, api, []);
        foreach (var callback in api.Annotations.OfType<EnvironmentCallbackAnnotation>())
        {
            await callback.Callback(context);
        }

        return context.EnvironmentVariables;
    }

    [Fact]
    public async Task The_apphost_hands_the_chat_api_a_generated_content_hash_key_as_a_secret_parameter()
    {
        var builder = await BuilderAsync();
        var api = AppHostModel.AllocatePortsAndFindChatApi(builder);
        var parameter = builder.Resources.OfType<ParameterResource>().Single(p => p.Name == "chat-api-content-hash-key");

        // Secret (the dashboard hides it), and generated: no value is written in the AppHost.
        Assert.True(parameter.Secret);
        var generated = Assert.IsType<GenerateParameterDefault>(parameter.Default);
        Assert.True(generated.MinLength >= 48, $"at least 48 generated characters, not {generated.MinLength}");

        // The variable refers to that parameter itself, not to a string copied out of it.
        var raw = await RawEnvironmentAsync(builder, api);
        Assert.Same(parameter, raw["DualWrite__ContentHashKey"]);
        Assert.Same(builder.Resources.OfType<ParameterResource>().Single(p => p.Name == "chat-api-jwt-signing-key"), raw["Identity__SigningKey"]);

        // What the chat API is launched with: the generated value, long enough for its 32-byte minimum, and not the signing key.
        var environment = await api.GetEnvironmentVariableValuesAsync();
        var key = environment["DualWrite__ContentHashKey"];
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(key) >= 48);
        Assert.Equal(await ((IValueProvider)parameter).GetValueAsync(), key);
        Assert.NotEqual(environment["Identity__SigningKey"], key);
    }
}
