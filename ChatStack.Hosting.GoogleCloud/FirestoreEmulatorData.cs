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
/// it stops before them, while the emulators still run.
/// </summary>
internal sealed class FirestoreDataExport(DistributedApplicationModel model, ILogger<FirestoreDataExport> logger) : IHostedService
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var emulator in model.Resources.OfType<GoogleCloudEmulatorResource>())
        {
            if (emulator.Annotations.OfType<FirestoreDataAnnotation>().SingleOrDefault() is { } data && emulator.PrimaryEndpoint.IsAllocated)
            {
                await ExportAsync(emulator, data, cancellationToken);
            }
        }
    }

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
