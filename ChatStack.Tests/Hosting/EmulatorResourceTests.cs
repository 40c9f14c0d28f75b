// The one-call evaluators are marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running
// app; for reading what a resource would be launched with they are exactly right.
#pragma warning disable CS0618

using System.Net;
using System.Net.Sockets;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using ChatStack.Hosting.GoogleCloud;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Tests.Hosting;

public sealed class EmulatorResourceTests : IDisposable
{
    private readonly FakeSdk _sdk = new();

    public void Dispose() => _sdk.Dispose();

    private IDistributedApplicationBuilder Builder(params (string Key, string Value)[] settings)
    {
        var builder = DistributedApplication.CreateBuilder(new DistributedApplicationOptions { DisableDashboard = true });
        var values = new Dictionary<string, string?>
        {
            [GoogleCloudSdk.SdkPathKey] = _sdk.Root,
            [GoogleCloudSdk.JavaPathKey] = _sdk.JavaPath,
        };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(values);
        return builder;
    }

    private static void Allocate(IResourceWithEndpoints resource, int port, int targetPort)
    {
        var endpoint = resource.Annotations.OfType<EndpointAnnotation>().Single();
        endpoint.TargetPort ??= targetPort;
        endpoint.AllocatedEndpoint = new AllocatedEndpoint(endpoint, "localhost", port);
    }

    [Fact]
    public async Task PubSub_emulator_starts_the_sdk_jar_on_loopback_with_the_allocated_port_and_bounded_memory()
    {
        var builder = Builder();
        var pubsub = builder.AddPubSubEmulator("pubsub");
        Allocate(pubsub.Resource, 40001, 40002);

        var executable = Assert.IsType<GoogleCloudEmulatorResource>(pubsub.Resource);
        Assert.Equal(_sdk.JavaPath, executable.Command);
        var args = await executable.GetArgumentValuesAsync();
        Assert.Equal(
            ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar",
             Path.Combine(_sdk.Root, "platform/pubsub-emulator/lib/cloud-pubsub-emulator-0.8.20-all.jar"),
             "--host=127.0.0.1", "--port=40002"],
            args);
        Assert.Equal("localhost:40001", await pubsub.Resource.ConnectionStringExpression.GetValueAsync(default));
        var health = Assert.Single(pubsub.Resource.Annotations.OfType<HealthCheckAnnotation>());
        Assert.Contains("pubsub", health.Key);
    }

    [Fact]
    public async Task Firestore_emulator_runs_the_sdk_main_class_and_accepts_custom_jvm_flags()
    {
        var builder = Builder();
        var firestore = builder.AddFirestoreEmulator("firestore", options => options.JvmOptions = ["-Xmx512m"]);
        Allocate(firestore.Resource, 40011, 40012);

        var args = await ((IResourceWithArgs)firestore.Resource).GetArgumentValuesAsync();
        Assert.Equal(
            ["-Xmx512m", "-Duser.language=en", "-cp",
             Path.Combine(_sdk.Root, "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"),
             "com.google.cloud.datastore.emulator.firestore.CloudFirestore", "start", "--host=127.0.0.1", "--port=40012"],
            args);
    }

    [Fact]
    public async Task Configured_jvm_flags_replace_the_default_flags_instead_of_being_added_to_them()
    {
        // As the AppHost reads them: settings under GoogleCloud:Emulators:{name}. The binder alone would append
        // these to the defaults, and the JVM refuses two garbage collectors.
        var builder = Builder(
            ("GoogleCloud:Emulators:pubsub:JvmOptions:0", "-XX:+UseG1GC"),
            ("GoogleCloud:Emulators:pubsub:JvmOptions:1", "-Xmx1g"));
        var pubsub = builder.AddPubSubEmulator("pubsub");
        Allocate(pubsub.Resource, 40051, 40052);

        var args = await ((IResourceWithArgs)pubsub.Resource).GetArgumentValuesAsync();
        Assert.Equal(["-XX:+UseG1GC", "-Xmx1g", "-jar"], args.Take(3));
        Assert.DoesNotContain(args, a => new GoogleCloudEmulatorOptions().JvmOptions.Contains(a));
    }

    [Fact]
    public async Task Jvm_flags_configured_as_empty_leave_the_jvm_its_own_defaults()
    {
        var builder = Builder(("GoogleCloud:Emulators:firestore:JvmOptions", ""));
        var firestore = builder.AddFirestoreEmulator("firestore");
        Allocate(firestore.Resource, 40061, 40062);

        var args = await ((IResourceWithArgs)firestore.Resource).GetArgumentValuesAsync();
        Assert.Equal("-Duser.language=en", args[0]);
    }

    private sealed class BigQueryEmulatorProject : IProjectMetadata
    {
        public string ProjectPath => Path.Combine(Deployment.PublishedManifest.RepositoryRoot, "ChatStack.BigQueryEmulator", "ChatStack.BigQueryEmulator.csproj");
    }

    private static async Task<Dictionary<string, string>> BigQueryEmulatorEnvironment(IDistributedApplicationBuilder builder)
    {
        var emulator = builder.AddBigQueryEmulator<BigQueryEmulatorProject>("bigquery");
        Allocate(emulator.Resource, 40041, 40042);
        return await emulator.Resource.GetEnvironmentVariableValuesAsync();
    }

    [Fact]
    public async Task The_bigquery_emulator_keeps_its_data_file_unless_configured_with_a_folder_of_its_own_or_memory()
    {
        var byDefault = await BigQueryEmulatorEnvironment(Builder());
        Assert.DoesNotContain("BigQueryEmulator__InMemory", byDefault.Keys);
        Assert.DoesNotContain("BigQueryEmulator__DataPath", byDefault.Keys);

        var withFolder = Builder(("GoogleCloud:Emulators:bigquery:DataPath", "../.data/second-stack"));
        Assert.Equal(Path.GetFullPath("../.data/second-stack", withFolder.AppHostDirectory), (await BigQueryEmulatorEnvironment(withFolder))["BigQueryEmulator__DataPath"]);

        var inMemory = await BigQueryEmulatorEnvironment(Builder(("GoogleCloud:Emulators:bigquery:InMemory", "true"), ("GoogleCloud:Emulators:bigquery:DataPath", "ignored")));
        Assert.Equal("true", inMemory["BigQueryEmulator__InMemory"]);
        Assert.DoesNotContain("BigQueryEmulator__DataPath", inMemory.Keys);
    }

    [Fact]
    public async Task Services_get_the_emulator_host_variables_and_project_and_wait_for_the_emulators()
    {
        var builder = Builder(("Parameters:gcp-project-id", "test-project"));
        var project = builder.AddParameter("gcp-project-id");
        var pubsub = builder.AddPubSubEmulator("pubsub");
        var firestore = builder.AddFirestoreEmulator("firestore");
        Allocate(pubsub.Resource, 40021, 40022);
        Allocate(firestore.Resource, 40031, 40032);

        var service = builder.AddExecutable("service", "true", ".")
            .WithGoogleCloudProject(project)
            .WithGoogleCloudEmulator(pubsub)
            .WithGoogleCloudEmulator(firestore);

        var environment = await service.Resource.GetEnvironmentVariableValuesAsync();
        Assert.Equal("localhost:40021", environment["PUBSUB_EMULATOR_HOST"]);
        Assert.Equal("localhost:40031", environment["FIRESTORE_EMULATOR_HOST"]);
        Assert.Equal("test-project", environment["GOOGLE_CLOUD_PROJECT"]);
        var waits = service.Resource.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name).Order();
        Assert.Equal(["firestore", "pubsub"], waits);
    }

    [Fact]
    public void Container_mode_uses_googles_emulators_image_and_listens_inside_the_container()
    {
        var builder = Builder(("GoogleCloud:Emulators:Runtime", "Container"));
        var pubsub = builder.AddPubSubEmulator("pubsub");

        var container = Assert.IsType<GoogleCloudEmulatorContainerResource>(pubsub.Resource);
        var image = Assert.Single(container.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal("gcr.io/google.com/cloudsdktool/google-cloud-cli", image.Image);
        Assert.Equal("emulators", image.Tag);
        Assert.Equal("gcloud", container.Entrypoint);
        Assert.Equal(8085, container.Annotations.OfType<EndpointAnnotation>().Single().TargetPort);
    }

    [Fact]
    public void A_fixed_port_that_is_taken_fails_with_a_message_naming_the_setting()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        var port = ((IPEndPoint)occupant.LocalEndpoint).Port;

        var builder = Builder(("GoogleCloud:Emulators:pubsub:Port", port.ToString()));
        var error = Assert.Throws<GoogleCloudEmulatorException>(() => builder.AddPubSubEmulator("pubsub"));
        Assert.Contains($"Port {port}", error.Message);
        Assert.Contains("GoogleCloud:Emulators:pubsub:Port", error.Message);
    }

    [Fact]
    public void A_missing_sdk_stops_the_builder_with_the_install_hint()
    {
        var builder = Builder((GoogleCloudSdk.SdkPathKey, "/no/such/sdk"));
        var error = Assert.Throws<GoogleCloudEmulatorException>(() => builder.AddFirestoreEmulator("firestore"));
        Assert.Contains("/no/such/sdk", error.Message);
    }

    [Fact]
    public void Emulators_stay_out_of_the_deployment_manifest()
    {
        var builder = Builder();
        var pubsub = builder.AddPubSubEmulator("pubsub");
        Assert.Contains(pubsub.Resource.Annotations, a => a is ManifestPublishingCallbackAnnotation m && m.Callback is null);
    }
}
