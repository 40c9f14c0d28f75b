using Aspire.Hosting.ApplicationModel;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>An emulator that services reach through a <c>*_EMULATOR_HOST</c> variable.</summary>
public interface IGoogleCloudEmulatorResource : IResourceWithConnectionString, IResourceWithEndpoints,
    IResourceWithEnvironment, IResourceWithArgs, IResourceWithWaitSupport
{
    /// <summary>The endpoint clients talk to (gRPC and REST share it).</summary>
    EndpointReference PrimaryEndpoint { get; }
}

/// <summary>Marks a resource as a Google Cloud emulator and names the variable its clients read.</summary>
/// <param name="HostVariable">For example <c>PUBSUB_EMULATOR_HOST</c>.</param>
/// <param name="EndpointName">The endpoint whose host:port goes into the variable.</param>
public sealed record GoogleCloudEmulatorAnnotation(string HostVariable, string EndpointName) : IResourceAnnotation;

/// <summary>An emulator run as a JVM from the local Google Cloud SDK.</summary>
public sealed class GoogleCloudEmulatorResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IGoogleCloudEmulatorResource
{
    internal const string PrimaryEndpointName = "http";

    /// <inheritdoc />
    public EndpointReference PrimaryEndpoint => field ??= new(this, PrimaryEndpointName);

    /// <summary>host:port, the form the Google client libraries expect in <c>*_EMULATOR_HOST</c>.</summary>
    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)}");
}

/// <summary>An emulator run from Google's <c>google-cloud-cli:emulators</c> container image.</summary>
public sealed class GoogleCloudEmulatorContainerResource(string name)
    : ContainerResource(name, entrypoint: "gcloud"), IGoogleCloudEmulatorResource
{
    /// <inheritdoc />
    public EndpointReference PrimaryEndpoint => field ??= new(this, GoogleCloudEmulatorResource.PrimaryEndpointName);

    /// <inheritdoc />
    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{PrimaryEndpoint.Property(EndpointProperty.HostAndPort)}");
}
