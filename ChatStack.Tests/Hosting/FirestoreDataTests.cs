// The one-call evaluator is marked obsolete in favour of ExecutionConfigurationBuilder, which needs a running app;
// for reading what a resource would be launched with it is exactly right.
#pragma warning disable CS0618

using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using ChatStack.Hosting.GoogleCloud;
using ChatStack.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ChatStack.Tests.Hosting;

/// <summary>The Firestore emulator's documents kept across runs: exported when the AppHost stops, imported at start.</summary>
public sealed class FirestoreDataTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("chatstack-firestore-data-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Documents_written_in_one_run_are_there_in_the_next_and_the_next_runs_writes_too()
    {
        await RunAsync(async firestore => await PutAsync(firestore, "first", "written in run 1"));
        Assert.True(File.Exists(Path.Combine(_folder.FullName, "chatstack", "chatstack.overall_export_metadata")));

        await RunAsync(async firestore =>
        {
            Assert.Equal("written in run 1", await GetAsync(firestore, "first"));
            await PutAsync(firestore, "second", "written in run 2");
        });

        await RunAsync(async firestore =>
        {
            Assert.Equal("written in run 1", await GetAsync(firestore, "first"));
            Assert.Equal("written in run 2", await GetAsync(firestore, "second"));
        });
        // Nothing left over from the swaps.
        Assert.Equal(["chatstack"], _folder.EnumerateDirectories().Select(d => d.Name));
    }

    [Fact]
    public async Task What_a_service_writes_while_it_stops_is_kept()
    {
        // A service like the chat API: handed the emulator by WithGoogleCloudEmulator, and writing when it is stopped
        // (the chat API saves a cancelled turn's answer-so-far, its usage, outbox records). Its first document says it is up.
        const string Writer = """
            put() { curl -sf -X POST -H 'Content-Type: application/json' \
              "http://$FIRESTORE_EMULATOR_HOST/v1/projects/$GOOGLE_CLOUD_PROJECT/databases/(default)/documents/notes?documentId=$1" \
              -d "{\"fields\":{\"text\":{\"stringValue\":\"$2\"}}}" > /dev/null; }
            trap 'put stopping "written while stopping"; exit 0' TERM INT
            put started "written at start"
            while true; do sleep 0.1; done
            """;
        await RunAsync(
            (builder, firestore, project) => builder.AddExecutable("writer", "sh", AppContext.BaseDirectory, "-c", Writer)
                .WithGoogleCloudEmulator(firestore)
                .WithGoogleCloudProject(project),
            async firestore => await WaitForAsync(firestore, "started"));

        await RunAsync(work: async firestore =>
        {
            Assert.Equal("written at start", await GetAsync(firestore, "started"));
            Assert.Equal("written while stopping", await GetAsync(firestore, "stopping"));
        });
    }

    [Fact]
    public async Task The_apphost_keeps_documents_under_its_folder_unless_the_data_path_is_empty()
    {
        using (var byDefault = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>())
        {
            var data = Assert.Single(Firestore(byDefault).Annotations.OfType<FirestoreDataAnnotation>());
            Assert.Equal(Path.Combine(byDefault.AppHostDirectory, ".data", "firestore"), data.Directory);
            Assert.Equal("gcp-project-id", data.Project.Name);
        }

        using var isolated = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ChatStack_AppHost>(IsolatedAppHost.Args);
        Assert.Empty(Firestore(isolated).Annotations.OfType<FirestoreDataAnnotation>());
    }

    private static IResource Firestore(IDistributedApplicationTestingBuilder builder) => builder.Resources.Single(r => r.Name == "firestore");

    private Task RunAsync(Func<HttpClient, Task> work) => RunAsync(add: null, work);

    /// <param name="add">Adds resources beside the emulator, given it and the project parameter.</param>
    private async Task RunAsync(
        Action<IDistributedApplicationBuilder, IResourceBuilder<IGoogleCloudEmulatorResource>, IResourceBuilder<ParameterResource>>? add,
        Func<HttpClient, Task> work)
    {
        // The AppHost's assembly tells Aspire where DCP is; the app itself is only the emulator.
        var builder = DistributedApplication.CreateBuilder(new DistributedApplicationOptions
        {
            Args = ["--Parameters:project=data-test"],
            DisableDashboard = true,
            AssemblyName = "ChatStack.AppHost",
        });
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        var project = builder.AddParameter("project");
        var firestore = builder.AddFirestoreEmulator("firestore").WithDataDirectory(project, _folder.FullName);
        add?.Invoke(builder, firestore, project);
        await using var app = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await app.StartAsync(timeout.Token);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("firestore", timeout.Token);
        using var http = new HttpClient { BaseAddress = app.GetEndpoint("firestore", "http") };
        await work(http);
        await app.StopAsync(timeout.Token);
    }

    private static async Task PutAsync(HttpClient firestore, string id, string text)
    {
        using var response = await firestore.PostAsJsonAsync($"/v1/projects/data-test/databases/(default)/documents/notes?documentId={id}",
            new { fields = new { text = new { stringValue = text } } });
        response.EnsureSuccessStatusCode();
    }

    private static async Task WaitForAsync(HttpClient firestore, string id)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var response = await firestore.GetAsync($"/v1/projects/data-test/databases/(default)/documents/notes/{id}");
            if (response.IsSuccessStatusCode)
            {
                return;
            }

            Assert.True(attempt < 600, $"notes/{id} was not written within a minute: {(int)response.StatusCode}");
            await Task.Delay(100);
        }
    }

    private static async Task<string?> GetAsync(HttpClient firestore, string id)
    {
        using var response = await firestore.GetAsync($"/v1/projects/data-test/databases/(default)/documents/notes/{id}");
        Assert.True(response.IsSuccessStatusCode, $"notes/{id}: {(int)response.StatusCode}");
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("fields").GetProperty("text").GetProperty("stringValue").GetString();
    }
}
