using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>Adds the Google Cloud emulators ChatStack runs on locally, and hands them to services.</summary>
public static class GoogleCloudEmulatorBuilderExtensions
{
    /// <summary>Variable the Pub/Sub client libraries read.</summary>
    public const string PubSubHostVariable = "PUBSUB_EMULATOR_HOST";

    /// <summary>Variable the Firestore client libraries read.</summary>
    public const string FirestoreHostVariable = "FIRESTORE_EMULATOR_HOST";

    /// <summary>Variable ChatStack's BigQuery client reads.</summary>
    public const string BigQueryHostVariable = "BIGQUERY_EMULATOR_HOST";

    /// <summary>Variable naming the Google Cloud project, read by every Google client.</summary>
    public const string ProjectVariable = "GOOGLE_CLOUD_PROJECT";

    internal const string EmulatorsSection = "GoogleCloud:Emulators";

    internal const string PubSubContainerPort = "8085";
    internal const string FirestoreContainerPort = "8080";

    /// <summary>The Pub/Sub emulator of the Google Cloud SDK, on a free port, healthy once <c>GET /</c> answers.</summary>
    public static IResourceBuilder<IGoogleCloudEmulatorResource> AddPubSubEmulator(
        this IDistributedApplicationBuilder builder, string name, Action<GoogleCloudEmulatorOptions>? configure = null)
    {
        var options = ReadOptions(builder, name, configure);
        return options.Runtime == EmulatorRuntime.Container
            ? AddContainerEmulator(builder, name, options, PubSubHostVariable, int.Parse(PubSubContainerPort),
                ["beta", "emulators", "pubsub", "start", $"--host-port=0.0.0.0:{PubSubContainerPort}"])
            : AddJvmEmulator(builder, name, options, PubSubHostVariable, sdk =>
            {
                var jar = GoogleCloudSdk.ComponentFile(sdk, "platform/pubsub-emulator/lib", "cloud-pubsub-emulator-*.jar",
                    "pubsub-emulator", "google-cloud-cli-pubsub-emulator");
                return ["-jar", jar];
            });
    }

    /// <summary>The Firestore emulator of the Google Cloud SDK, on a free port, healthy once <c>GET /</c> answers.</summary>
    public static IResourceBuilder<IGoogleCloudEmulatorResource> AddFirestoreEmulator(
        this IDistributedApplicationBuilder builder, string name, Action<GoogleCloudEmulatorOptions>? configure = null)
    {
        var options = ReadOptions(builder, name, configure);
        return options.Runtime == EmulatorRuntime.Container
            ? AddContainerEmulator(builder, name, options, FirestoreHostVariable, int.Parse(FirestoreContainerPort),
                ["emulators", "firestore", "start", $"--host-port=0.0.0.0:{FirestoreContainerPort}"])
            : AddJvmEmulator(builder, name, options, FirestoreHostVariable, sdk =>
            {
                var jar = GoogleCloudSdk.ComponentFile(sdk, "platform/cloud-firestore-emulator", "cloud-firestore-emulator.jar",
                    "cloud-firestore-emulator", "google-cloud-cli-firestore-emulator");
                // English messages whatever the machine's locale, so logs and errors read the same everywhere.
                return ["-Duser.language=en", "-cp", jar, "com.google.cloud.datastore.emulator.firestore.CloudFirestore", "start"];
            });
    }

    /// <summary>
    /// ChatStack's BigQuery emulator (a project of this repository), healthy once <c>GET /health</c> answers.
    /// </summary>
    public static IResourceBuilder<ProjectResource> AddBigQueryEmulator<TProject>(
        this IDistributedApplicationBuilder builder, string name) where TProject : IProjectMetadata, new()
    {
        var emulator = builder.AddProject<TProject>(name);
        if (!emulator.Resource.Annotations.OfType<EndpointAnnotation>().Any(e => e.Name == "http"))
        {
            // No launch profile gave it one: let Aspire pick a free port.
            emulator.WithHttpEndpoint(name: "http");
        }

        // Where its DuckDB file lives: by default under the emulator's project, kept across runs. A second stack from
        // the same checkout (tests beside a running one) needs a folder of its own, or memory.
        var storage = builder.Configuration.GetSection($"{EmulatorsSection}:{name}");
        if (storage.GetValue<bool>("InMemory"))
        {
            emulator.WithEnvironment("BigQueryEmulator__InMemory", "true");
        }
        else if (storage["DataPath"] is { Length: > 0 } dataPath)
        {
            emulator.WithEnvironment("BigQueryEmulator__DataPath", Path.GetFullPath(dataPath, builder.AppHostDirectory));
        }

        return emulator
            .WithAnnotation(new GoogleCloudEmulatorAnnotation(BigQueryHostVariable, "http"))
            .WithHttpHealthCheck("/health")
            .WithIconName("DatabaseSearch")
            .ExcludeFromManifest();
    }

    /// <summary>
    /// Points a service at an emulator: sets its <c>*_EMULATOR_HOST</c> variable and its connection string,
    /// and starts the service only once the emulator is healthy.
    /// </summary>
    public static IResourceBuilder<T> WithGoogleCloudEmulator<T>(this IResourceBuilder<T> builder, IResourceBuilder<IResourceWithEndpoints> emulator)
        where T : IResourceWithEnvironment, IResourceWithWaitSupport
    {
        var annotation = emulator.Resource.Annotations.OfType<GoogleCloudEmulatorAnnotation>().SingleOrDefault()
            ?? throw new ArgumentException($"Resource '{emulator.Resource.Name}' is not a Google Cloud emulator.", nameof(emulator));
        var endpoint = emulator.Resource.GetEndpoint(annotation.EndpointName);
        return builder
            .WithEnvironment(annotation.HostVariable, ReferenceExpression.Create($"{endpoint.Property(EndpointProperty.HostAndPort)}"))
            .WaitFor(emulator);
    }

    /// <summary>Hands a service the Google Cloud project id.</summary>
    public static IResourceBuilder<T> WithGoogleCloudProject<T>(this IResourceBuilder<T> builder, IResourceBuilder<ParameterResource> projectId)
        where T : IResourceWithEnvironment =>
        builder.WithEnvironment(ProjectVariable, projectId);

    private static GoogleCloudEmulatorOptions ReadOptions(IDistributedApplicationBuilder builder, string name, Action<GoogleCloudEmulatorOptions>? configure)
    {
        var options = new GoogleCloudEmulatorOptions();
        var section = builder.Configuration.GetSection(EmulatorsSection);
        if (section.GetValue<EmulatorRuntime?>(nameof(GoogleCloudEmulatorOptions.Runtime)) is { } runtime)
        {
            options.Runtime = runtime;
        }

        // The binder appends configured list items to a list's defaults (dotnet/runtime#46988), which would give the
        // JVM two garbage collectors: configured JvmOptions (even an empty value) replace the default flags instead.
        var emulator = section.GetSection(name);
        if (emulator.GetSection(nameof(GoogleCloudEmulatorOptions.JvmOptions)).Exists())
        {
            options.JvmOptions = [];
        }

        emulator.Bind(options);
        configure?.Invoke(options);
        return options;
    }

    private static IResourceBuilder<IGoogleCloudEmulatorResource> AddJvmEmulator(
        IDistributedApplicationBuilder builder, string name, GoogleCloudEmulatorOptions options, string hostVariable,
        Func<string, string[]> launchArguments)
    {
        // Publish mode never starts the JVM: don't demand an SDK on a machine that only writes a manifest.
        var runMode = builder.ExecutionContext.IsRunMode;
        var java = runMode ? GoogleCloudSdk.LocateJava(builder.Configuration) : "java";
        string[] arguments = runMode ? launchArguments(GoogleCloudSdk.LocateSdkRoot(builder.Configuration)) : [];
        if (runMode && options.Port is { } port)
        {
            PortAvailability.EnsureFree(port, $"the {name} emulator", $"GoogleCloud:Emulators:{name}:Port");
        }

        var resource = new GoogleCloudEmulatorResource(name, java, builder.AppHostDirectory);
        return builder.AddResource<IGoogleCloudEmulatorResource>(resource)
            .WithAnnotation(new GoogleCloudEmulatorAnnotation(hostVariable, GoogleCloudEmulatorResource.PrimaryEndpointName))
            .WithHttpEndpoint(port: options.Port, name: GoogleCloudEmulatorResource.PrimaryEndpointName)
            .WithArgs(context =>
            {
                foreach (var flag in options.JvmOptions)
                {
                    context.Args.Add(flag);
                }

                foreach (var argument in arguments)
                {
                    context.Args.Add(argument);
                }

                // Loopback only: the emulators have no authentication.
                context.Args.Add("--host=127.0.0.1");
                context.Args.Add(ReferenceExpression.Create(
                    $"--port={resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort)}"));
            })
            .WithHttpHealthCheck("/", endpointName: GoogleCloudEmulatorResource.PrimaryEndpointName)
            .WithIconName("CloudDatabase")
            .ExcludeFromManifest();
    }

    private static IResourceBuilder<IGoogleCloudEmulatorResource> AddContainerEmulator(
        IDistributedApplicationBuilder builder, string name, GoogleCloudEmulatorOptions options, string hostVariable,
        int containerPort, string[] arguments)
    {
        var resource = new GoogleCloudEmulatorContainerResource(name);
        return builder.AddResource<IGoogleCloudEmulatorResource>(resource)
            .WithAnnotation(new ContainerImageAnnotation { Image = options.ContainerImage, Tag = options.ContainerTag })
            .WithAnnotation(new GoogleCloudEmulatorAnnotation(hostVariable, GoogleCloudEmulatorResource.PrimaryEndpointName))
            .WithHttpEndpoint(port: options.Port, targetPort: containerPort, name: GoogleCloudEmulatorResource.PrimaryEndpointName)
            .WithArgs(arguments)
            .WithHttpHealthCheck("/", endpointName: GoogleCloudEmulatorResource.PrimaryEndpointName)
            .WithIconName("CloudDatabase")
            .ExcludeFromManifest();
    }
}
