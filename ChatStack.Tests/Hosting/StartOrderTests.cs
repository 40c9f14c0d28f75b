using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Hosting;

/// <summary>What each service of the local stack waits for before it starts.</summary>
public class StartOrderTests
{
    [Theory]
    [InlineData("analytics-worker")]
    // Its outbox relay publishes at once what the last run left; before the subscriptions exist Pub/Sub drops it.
    [InlineData("chat-api")]
    public async Task A_service_that_reads_or_writes_chat_events_starts_after_the_provisioner_completed(string service)
    {
        using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);

        var waits = builder.Resources.Single(r => r.Name == service).Annotations.OfType<WaitAnnotation>();

        Assert.Contains(waits, w => w.Resource.Name == "provisioner" && w.WaitType == WaitType.WaitForCompletion);
    }
}
