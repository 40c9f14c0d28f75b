using System.Net.Http.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>Where a Firestore emulator keeps its documents between runs, and for which project.</summary>
internal sealed record FirestoreDataAnnotation(string Directory, ParameterResource Project) : IResourceAnnotation
{
    public const string ExportName = "chatstack";

    /// <summary>The metadata file of the last export; the emulator's <c>--import-data</c> takes this file.</summary>
    public string Metadata => Path.Combine(Directory, ExportName, $"{ExportName}.overall_export_metadata");
}

public static class FirestoreEmulatorDataExtensions
{
    /// <summary>
    /// Keeps the Firestore emulator's documents of <paramref name="project"/> across runs in the folder
    /// <c>GoogleCloud:Emulators:{name}:DataPath</c> names, or <paramref name="defaultDirectory"/> when that is not set
    /// (relative to the AppHost; an empty DataPath keeps nothing): imported when the emulator starts, exported through
    /// the emulator's export endpoint when the AppHost stops. The SDK emulator's own <c>--export-on-exit</c> exports
    /// nothing when its process is stopped with a signal, which is how the orchestrator stops it. Only the executable
    /// runtime keeps data; a container emulator is returned unchanged.
    /// </summary>
    public static IResourceBuilder<IGoogleCloudEmulatorResource> WithDataDirectory(
        this IResourceBuilder<IGoogleCloudEmulatorResource> firestore, IResourceBuilder<ParameterResource> project, string defaultDirectory)
    {
        var builder = firestore.ApplicationBuilder;
        var directory = builder.Configuration[$"{GoogleCloudEmulatorBuilderExtensions.EmulatorsSection}:{firestore.Resource.Name}:DataPath"] ?? defaultDirectory;
        if (firestore.Resource is not GoogleCloudEmulatorResource || !builder.ExecutionContext.IsRunMode || directory.Length == 0)
        {
            return firestore;
        }

        var data = new FirestoreDataAnnotation(Path.GetFullPath(directory, builder.AppHostDirectory), project.Resource);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, FirestoreDataExport>());
        return firestore
            .WithAnnotation(data)
            .WithArgs(context =>
            {
                if (File.Exists(data.Metadata))
                {
                    context.Args.Add($"--import-data={data.Metadata}");
                }
            });
    }
}

/// <summary>
/// Exports every Firestore emulator that keeps data when the AppHost stops. Registered after Aspire's own services,
/// it stops before them, while the emulators still run. The services that write to an emulator stop first: they
/// write while they stop (the answer-so-far of a cancelled turn, its usage, outbox records), and Aspire would only
/// stop them after the export.
/// </summary>
internal sealed class FirestoreDataExport(
    DistributedApplicationModel model, ResourceNotificationService notifications, ResourceCommandService commands,
    ILogger<FirestoreDataExport> logger) : IHostedService
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How <c>WithEnvironment</c> records that a resource is handed the emulator's address (Aspire's
    /// <c>KnownRelationshipTypes</c> is internal).
    /// </summary>
    private const string ReferenceRelationship = "Reference";

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var emulator in model.Resources.OfType<GoogleCloudEmulatorResource>())
        {
            if (emulator.Annotations.OfType<FirestoreDataAnnotation>().SingleOrDefault() is { } data && emulator.PrimaryEndpoint.IsAllocated)
            {
                await StopWritersAsync(emulator, cancellationToken);
                await ExportAsync(emulator, data, cancellationToken);
            }
        }
    }

    /// <summary>Stops the running resources that reference <paramref name="emulator"/> and waits, bounded, until they have exited.</summary>
    private async Task StopWritersAsync(GoogleCloudEmulatorResource emulator, CancellationToken cancellationToken)
    {
        var writers = model.Resources
            .Where(r => r.Annotations.OfType<ResourceRelationshipAnnotation>().Any(a => a.Resource == emulator && a.Type == ReferenceRelationship))
            .Where(r => notifications.TryGetCurrentState(r.Name, out var current) && IsRunning(current.Snapshot.State?.Text))
            .ToList();
        if (writers.Count == 0)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        var stops = writers.Select(w => (w.Name, Task: StopAsync(w, timeout.Token))).ToList();
        try
        {
            await Task.WhenAll(stops.Select(s => s.Task));
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
        {
            // Named below, with every other writer that did not stop.
        }

        var running = stops.Where(s => !s.Task.IsCompletedSuccessfully)
            .Select(s => s.Task.Exception?.InnerException is { } e ? $"{s.Name} ({e.Message})" : s.Name).ToList();
        if (running.Count > 0)
        {
            logger.LogWarning("{Resources} did not stop within {Seconds} s; what they write to the {Emulator} emulator from now on is not kept",
                string.Join(", ", running), Timeout.TotalSeconds, emulator.Name);
        }
    }

    private async Task StopAsync(IResource resource, CancellationToken cancellationToken)
    {
        var exited = notifications.WaitForResourceAsync(resource.Name, KnownResourceStates.TerminalStates, cancellationToken);
        // The command returns at its next poll of the orchestrator, backing off up to seconds after the process ended;
        // the state says so first. A command that fails at once (none for this resource) would leave us waiting.
        var stop = commands.ExecuteCommandAsync(resource, KnownResourceCommands.StopCommand, cancellationToken);
        if (await Task.WhenAny(exited, stop) == stop && await stop is { Success: false } failed)
        {
            throw new InvalidOperationException(failed.Message);
        }

        await exited;
    }

    /// <summary>Not yet started, waiting on a dependency, or already ended: nothing of theirs is in flight.</summary>
    private static bool IsRunning(string? state) =>
        state is { Length: > 0 } && !KnownResourceStates.TerminalStates.Contains(state)
        && state != KnownResourceStates.NotStarted && state != KnownResourceStates.Waiting && state != KnownResourceStates.RuntimeUnhealthy;

    private async Task ExportAsync(GoogleCloudEmulatorResource emulator, FirestoreDataAnnotation data, CancellationToken cancellationToken)
    {
        // Exported beside the last export, then swapped in: a failed export leaves the previous one whole.
        var staging = Path.Combine(data.Directory, $".export-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            var project = await data.Project.GetValueAsync(cancellationToken);
            using var http = new HttpClient { BaseAddress = new Uri(emulator.PrimaryEndpoint.Url), Timeout = Timeout };
            using var response = await http.PostAsJsonAsync($"/emulator/v1/projects/{project}:export", new Dictionary<string, string>
            {
                ["database"] = $"projects/{project}/databases/(default)",
                ["export_directory"] = staging,
                ["export_name"] = FirestoreDataAnnotation.ExportName,
            }, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
            }

            var current = Path.Combine(data.Directory, FirestoreDataAnnotation.ExportName);
            var previous = Path.Combine(data.Directory, $".previous-{Guid.NewGuid():N}");
            if (Directory.Exists(current))
            {
                Directory.Move(current, previous);
            }

            Directory.Move(Path.Combine(staging, FirestoreDataAnnotation.ExportName), current);
            if (Directory.Exists(previous))
            {
                Directory.Delete(previous, recursive: true);
            }

            logger.LogInformation("Kept the {Emulator} emulator's documents in {Directory}", emulator.Name, data.Directory);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or UnauthorizedAccessException)
        {
            logger.LogWarning("The {Emulator} emulator's documents were not kept ({Reason}); the next run starts from the previous export, if any",
                emulator.Name, e.Message);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }
}
