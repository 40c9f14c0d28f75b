using ChatStack.Contracts;
using ChatStack.Hosting.GoogleCloud;

namespace Aspire.Hosting;

/// <summary>
/// The stack as it is published for Google Cloud: no emulators, so every service talks to the real Pub/Sub,
/// Firestore and BigQuery over TLS with application default credentials, addressed by parameters. The manifest
/// this produces is what <c>deploy/</c> is checked against.
/// </summary>
internal static class ChatStackOnGoogleCloud
{
    public const string ProjectIdParameter = "gcp-project-id";

    public static IDistributedApplicationBuilder AddChatStackOnGoogleCloud(this IDistributedApplicationBuilder builder)
    {
        // A manifest without a project is a deployment that cannot work; say so now rather than at deploy time.
        var projectId = builder.Setting(ProjectIdParameter, fallback: null);
        // Where Cloud Run runs the services; no service reads it, the deploy commands do.
        builder.Setting("gcp-region", "us-central1");
        var bigQueryLocation = builder.Setting("bigquery-location", "US");
        var firestoreDatabase = builder.Setting("firestore-database", "(default)");

        var chatModel = builder.Setting("chat-model", DefaultChatModel);
        var openAiEndpoint = builder.Setting("openai-endpoint", "https://api.openai.com/v1");
        var jwtIssuer = builder.Setting("chat-api-jwt-issuer", "chatstack");
        var jwtAudience = builder.Setting("chat-api-jwt-audience", "chat-api");
        // Origins of frontends served elsewhere, comma-separated; none by default (the bundled page is same-origin).
        var corsOrigins = builder.Setting("chat-api-cors-origins", "");
        // Secrets are parameters without a value: the manifest marks them secret and the deployment supplies them.
        var openAiApiKey = builder.AddParameter("openai-api-key", secret: true);
        var jwtSigningKey = builder.AddParameter("chat-api-jwt-signing-key", secret: true);
        var contentHashKey = builder.AddParameter(ContentHashKeyParameter, secret: true);

        // A Cloud Run job, run before the worker starts; its dry run is the pre-deploy check.
        var provisioner = builder.AddProject<Projects.ChatStack_Provisioner>("provisioner")
            .WithArgs("provision", "--dataset", ResourceNames.Dataset, "--location", bigQueryLocation.Resource)
            .WithGoogleCloudProject(projectId)
            .WithEnvironment("FIRESTORE_DATABASE", firestoreDatabase);

        builder.AddProject<Projects.ChatStack_AnalyticsWorker>("analytics-worker")
            .WithGoogleCloudProject(projectId)
            .WithEndpoint("http", http => http.TargetPort = ContainerPort)
            .WithServiceHealthCheck()
            .WaitForCompletion(provisioner);

        builder.AddProject<Projects.ChatStack_ChatApi>("chat-api")
            .WithGoogleCloudProject(projectId)
            .WithEnvironment("FIRESTORE_DATABASE", firestoreDatabase)
            .WithEnvironment("Identity__SigningKey", jwtSigningKey)
            .WithEnvironment(ContentHashKeyVariable, contentHashKey)
            .WithEnvironment("Identity__Issuer", jwtIssuer)
            .WithEnvironment("Identity__Audience", jwtAudience)
            .WithEnvironment("Cors__AllowedOrigins", corsOrigins)
            // One OpenAI-compatible model under a fixed name, so requests and the budget do not depend on the provider's id.
            .WithDefaultOpenAiModel()
            .WithEnvironment(ModelVariable("ProviderModelId"), chatModel)
            .WithEnvironment(ModelVariable("Endpoint"), openAiEndpoint)
            .WithEnvironment(ModelVariable("ApiKey"), openAiApiKey)
            .WithEndpoint("http", http => http.TargetPort = ContainerPort)
            .WithServiceHealthCheck()
            .WithExternalHttpEndpoints();

        return builder;
    }

    /// <summary>The secret parameter (and, deployed, the Secret Manager secret) keying the chat events' content hash.</summary>
    public const string ContentHashKeyParameter = "chat-api-content-hash-key";

    /// <summary>The chat API's setting <c>DualWrite:ContentHashKey</c> as an environment variable.</summary>
    public const string ContentHashKeyVariable = "DualWrite__ContentHashKey";

    /// <summary>The port the service images listen on (Directory.Build.targets) and Cloud Run sends requests to.</summary>
    public const int ContainerPort = 8080;

    /// <summary>The name requests use for the deployed model.</summary>
    public const string CloudModelName = "default";

    /// <summary>The provider's model id when <c>chat-model</c> names none.</summary>
    public const string DefaultChatModel = "gpt-4o-mini";

    /// <summary>
    /// An OpenAI-compatible model under <see cref="CloudModelName"/>, made the chat API's default: deployed, and locally
    /// when a key or endpoint is configured. The caller sets its id, endpoint and key (<see cref="ModelVariable"/>).
    /// </summary>
    internal static IResourceBuilder<ProjectResource> WithDefaultOpenAiModel(this IResourceBuilder<ProjectResource> chatApi) =>
        chatApi.WithEnvironment("Chat__DefaultModel", CloudModelName).WithEnvironment(ModelVariable("Provider"), "OpenAI");

    /// <summary>The chat API's variable for one setting of that model, e.g. <c>ApiKey</c>.</summary>
    internal static string ModelVariable(string setting) => $"Chat__Models__{CloudModelName}__{setting}";

    /// <summary>
    /// A plain parameter whose configured value (or <paramref name="fallback"/>) is written to the manifest as its
    /// default, so the manifest records what it was published for. Without a fallback the value is required.
    /// </summary>
    private static IResourceBuilder<ParameterResource> Setting(this IDistributedApplicationBuilder builder, string name, string? fallback)
    {
        var configured = builder.Configuration[$"Parameters:{name}"];
        var value = string.IsNullOrWhiteSpace(configured) ? fallback : configured.Trim();
        if (value is null)
        {
            throw new ChatStackPublishException(
                $"Parameter '{name}' has no value: set Parameters:{name} (environment variable Parameters__{name}) before publishing.");
        }

        return builder.AddParameter(name, value, publishValueAsDefault: true);
    }
}

/// <summary>Publishing cannot go on as configured. The message names the missing setting; the AppHost prints it and exits.</summary>
internal sealed class ChatStackPublishException(string message) : Exception(message);
