using ChatStack.Contracts;
using ChatStack.Hosting.GoogleCloud;
using Microsoft.Extensions.Configuration;

namespace Aspire.Hosting;

internal static class ChatStackApplication
{
    /// <summary>The project id the emulators use unless <c>Parameters:gcp-project-id</c> names another.</summary>
    public const string LocalProjectId = "chatstack-local";

    private const string LocalOtlpTimeoutMs = "2000";

    /// <summary>
    /// The whole stack on local emulators: the provisioner runs once the emulators are healthy, the worker
    /// once the provisioner has finished, the chat API once the stores it writes to are healthy.
    /// </summary>
    public static IDistributedApplicationBuilder AddChatStack(this IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode)
        {
            return builder.AddChatStackOnGoogleCloud();
        }

        // The local default lives here, not in appsettings.json, so a publish never picks it up by accident.
        var projectId = builder.AddParameter("gcp-project-id",
            () => builder.Configuration["Parameters:gcp-project-id"] is { Length: > 0 } configured ? configured : LocalProjectId);

        var pubsub = builder.AddPubSubEmulator("pubsub");
        // Conversations survive a restart, as the warehouse does.
        var firestore = builder.AddFirestoreEmulator("firestore").WithDataDirectory(projectId, ".data/firestore");
        var bigquery = builder.AddBigQueryEmulator<Projects.ChatStack_BigQueryEmulator>("bigquery");

        var provisioner = builder.AddProject<Projects.ChatStack_Provisioner>("provisioner")
            // Locally a rejected event should reach the dead-letter topic in seconds, not the minutes production waits.
            .WithArgs("provision", "--dataset", ResourceNames.Dataset, "--retry-min-backoff-seconds", "1", "--retry-max-backoff-seconds", "4")
            .WithGoogleCloudProject(projectId)
            .WithGoogleCloudEmulator(pubsub)
            .WithGoogleCloudEmulator(bigquery);

        builder.AddProject<Projects.ChatStack_AnalyticsWorker>("analytics-worker")
            .WithGoogleCloudProject(projectId)
            .WithGoogleCloudEmulator(pubsub)
            .WithGoogleCloudEmulator(bigquery)
            .WithServiceHealthCheck()
            .WaitForCompletion(provisioner);

        // The chat API's local token signing key: generated per run, never committed, shown as a secret.
        var chatSigningKey = builder.AddParameter("chat-api-jwt-signing-key",
            new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true);
        // The key of the chat events' content hash, the same way. Per run, so hashes of one text match within a run of
        // the local stack but not across runs; Parameters:chat-api-content-hash-key in the AppHost's user secrets pins it.
        var contentHashKey = builder.AddParameter(ChatStackOnGoogleCloud.ContentHashKeyParameter,
            new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true);

        builder.AddProject<Projects.ChatStack_ChatApi>("chat-api")
            .WithEnvironment("Identity__SigningKey", chatSigningKey)
            .WithEnvironment(ChatStackOnGoogleCloud.ContentHashKeyVariable, contentHashKey)
            // Aspire turns GenAI content capture on for every resource in run mode; prompts and answers stay out of
            // telemetry and the warehouse unless asked for (ChatStack:CaptureMessageContent=true).
            .WithEnvironment(ChatStack.Contracts.Telemetry.GenAiContentCapture.Variable,
                builder.Configuration.GetValue("ChatStack:CaptureMessageContent", false) ? "true" : "false")
            .WithGoogleCloudProject(projectId)
            .WithGoogleCloudEmulator(pubsub)
            .WithGoogleCloudEmulator(firestore)
            // The emulator's Pub/Sub starts empty while Firestore brings back last run's outbox: published before the
            // worker's subscription exists, those events would be accepted, dropped and deleted from the outbox.
            .WaitForCompletion(provisioner)
            .WithServiceHealthCheck()
            .WithUrlForEndpoint("http", url => url.DisplayText = "Chat")
            .WithExternalHttpEndpoints()
            .WithConfiguredModel(builder);

        // Ctrl+C stops the dashboard with the services, and each service's last OTLP export then retries against
        // it for the SDK's default 10 s: the services outlived the AppHost by ~10 s. Locally 2 s is ample for a
        // loopback export; deployed services keep the default.
        foreach (var project in builder.Resources.OfType<ProjectResource>())
        {
            builder.CreateResourceBuilder(project).WithEnvironment("OTEL_EXPORTER_OTLP_TIMEOUT", LocalOtlpTimeoutMs);
        }

        return builder;
    }

    /// <summary>
    /// A real model on the local stack, set with the parameters a deployment takes (AppHost user secrets or
    /// <c>Parameters__*</c> variables): <c>openai-api-key</c> or <c>openai-endpoint</c> adds an OpenAI-compatible model,
    /// the provider's <c>chat-model</c>, under the name it has when deployed, and makes it the default. The offline
    /// models stay available by name.
    /// </summary>
    private static IResourceBuilder<ProjectResource> WithConfiguredModel(this IResourceBuilder<ProjectResource> chatApi, IDistributedApplicationBuilder builder)
    {
        string? Setting(string name) => builder.Configuration[$"Parameters:{name}"] is { } value && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;
        var (apiKey, endpoint) = (Setting("openai-api-key"), Setting("openai-endpoint"));
        if (apiKey is null && endpoint is null)
        {
            return chatApi;
        }

        chatApi.WithDefaultOpenAiModel()
            .WithEnvironment(ChatStackOnGoogleCloud.ModelVariable("ProviderModelId"), Setting("chat-model") ?? ChatStackOnGoogleCloud.DefaultChatModel);
        if (endpoint is not null)
        {
            chatApi.WithEnvironment(ChatStackOnGoogleCloud.ModelVariable("Endpoint"), endpoint);
        }

        // A parameter, so the dashboard shows the key as a secret instead of in the resource's environment.
        return apiKey is null ? chatApi
            : chatApi.WithEnvironment(ChatStackOnGoogleCloud.ModelVariable("ApiKey"), builder.AddParameter("openai-api-key", secret: true));
    }
}
