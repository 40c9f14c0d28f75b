using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;

namespace ChatStack.Tests.Support;

/// <summary>Reading the AppHost's model without starting it.</summary>
public static class AppHostModel
{
    /// <summary>
    /// Gives every endpoint a port as DCP would allocate it, so addresses built from them (the emulators' hosts in the
    /// services' environment) resolve without starting anything; returns the chat API's resource.
    /// </summary>
    public static ProjectResource AllocatePortsAndFindChatApi(IDistributedApplicationTestingBuilder builder)
    {
        var port = 41000;
        foreach (var endpoint in builder.Resources.SelectMany(r => r.Annotations.OfType<EndpointAnnotation>()))
        {
            endpoint.AllocatedEndpoint = new AllocatedEndpoint(endpoint, "localhost", port++);
        }

        return builder.Resources.OfType<ProjectResource>().Single(r => r.Name == "chat-api");
    }

    /// <summary>Gives one endpoint of <paramref name="resource"/> the address a test serves it on.</summary>
    public static void Allocate(IResource resource, string endpointName, string host, int port)
    {
        var endpoint = resource.Annotations.OfType<EndpointAnnotation>().Single(e => e.Name == endpointName);
        endpoint.AllocatedEndpoint = new AllocatedEndpoint(endpoint, host, port);
    }
}
