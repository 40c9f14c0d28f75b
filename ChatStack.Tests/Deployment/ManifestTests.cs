using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Deployment;

/// <summary>Publish mode: the manifest declares the real Google Cloud services by parameters and no emulator.</summary>
public class ManifestTests(PublishedManifest manifest) : IClassFixture<PublishedManifest>
{
    private static readonly string[] Services = ["chat-api", "analytics-worker", "provisioner"];

    /// <summary>The secret parameters, in order: Secret Manager secrets that deploy/ creates and iam.sh lets the chat API read.</summary>
    internal static readonly string[] Secrets = ["chat-api-content-hash-key", "chat-api-jwt-signing-key", "openai-api-key"];

    [Fact]
    public void The_services_are_project_resources_and_nothing_else_runs()
    {
        var runnable = manifest.Resources.EnumerateObject().Where(r => r.Value.GetProperty("type").GetString() != "parameter.v0")
            .ToDictionary(r => r.Name, r => r.Value.GetProperty("type").GetString());

        Assert.Equal(Services.Order(), runnable.Keys.Order());
        Assert.All(runnable.Values, type => Assert.Equal("project.v0", type));
        Assert.EndsWith("ChatStack.ChatApi.csproj", manifest.Resource("chat-api").GetProperty("path").GetString());
        Assert.EndsWith("ChatStack.AnalyticsWorker.csproj", manifest.Resource("analytics-worker").GetProperty("path").GetString());
        Assert.EndsWith("ChatStack.Provisioner.csproj", manifest.Resource("provisioner").GetProperty("path").GetString());
    }

    [Fact]
    public void No_service_is_pointed_at_an_emulator()
    {
        foreach (var service in Services)
        {
            var env = PublishedManifest.Environment(manifest.Resource(service));
            Assert.DoesNotContain(env.Keys, key => key.EndsWith("_EMULATOR_HOST", StringComparison.Ordinal));
            Assert.DoesNotContain(env.Values, value => value.Contains("emulator", StringComparison.OrdinalIgnoreCase));
            Assert.Equal("{gcp-project-id.value}", env["GOOGLE_CLOUD_PROJECT"]);
        }
    }

    [Fact]
    public void Settings_are_parameters_and_the_publish_time_values_are_recorded_as_defaults()
    {
        var defaults = manifest.OfType("parameter.v0").Where(p => !manifest.IsSecret(p.Name)).ToDictionary(
            p => p.Name, p => p.Resource.GetProperty("inputs").GetProperty("value").GetProperty("default").GetProperty("value").GetString());

        Assert.Equal(PublishedManifest.ProjectId, defaults["gcp-project-id"]);
        Assert.Equal("us-central1", defaults["gcp-region"]);
        Assert.Equal("US", defaults["bigquery-location"]);
        Assert.Equal("(default)", defaults["firestore-database"]);

        var provisioner = PublishedManifest.Arguments(manifest.Resource("provisioner"));
        Assert.Equal(["provision", "--dataset", "chat_analytics", "--location", "{bigquery-location.value}"], provisioner);
        Assert.Equal("{firestore-database.value}", PublishedManifest.Environment(manifest.Resource("chat-api"))["FIRESTORE_DATABASE"]);
    }

    [Fact]
    public void Secrets_are_secret_parameters_without_a_value_and_reach_the_api_only_by_reference()
    {
        var secrets = manifest.OfType("parameter.v0").Where(p => manifest.IsSecret(p.Name)).Select(p => p.Name).Order().ToList();
        Assert.Equal(Secrets, secrets);
        Assert.All(secrets, name => Assert.False(manifest.Resource(name).GetProperty("inputs").GetProperty("value").TryGetProperty("default", out _)));

        var api = PublishedManifest.Environment(manifest.Resource("chat-api"));
        Assert.Equal("{chat-api-jwt-signing-key.value}", api["Identity__SigningKey"]);
        Assert.Equal("{chat-api-content-hash-key.value}", api["DualWrite__ContentHashKey"]);
        Assert.Equal("{openai-api-key.value}", api["Chat__Models__default__ApiKey"]);
        // Nothing else refers to a secret: the worker and the provisioner never see one.
        foreach (var service in Services.Where(s => s != "chat-api"))
        {
            Assert.DoesNotContain(PublishedManifest.Environment(manifest.Resource(service)).Values,
                value => secrets.Contains(PublishedManifest.ParameterReference(value) ?? ""));
        }
    }
}

/// <summary>The manifest step as the Aspire CLI runs it (<c>aspire do publish-manifest</c>).</summary>
public class ManifestStepTests(PublishedManifest manifest) : IClassFixture<PublishedManifest>
{
    [Fact]
    public async Task The_publish_manifest_step_writes_the_same_manifest_as_the_manifest_publisher()
    {
        var directory = Directory.CreateTempSubdirectory("chatstack-manifest-").FullName;
        try
        {
            using var appHost = AppHostProcess.Start(
                new Dictionary<string, string> { ["Parameters__gcp-project-id"] = PublishedManifest.ProjectId },
                "--operation", "publish", "--step", "publish-manifest", "--output-path", directory);

            var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(120));

            Assert.True(exitCode == 0, $"The step failed ({exitCode}).\nstdout:\n{appHost.StandardOutput}\nstderr:\n{appHost.StandardError}");
            using var written = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(directory, "aspire-manifest.json")));
            // Both files sit one folder below the temp folder, so even the relative project paths agree.
            Assert.Equal(manifest.Resources.GetRawText(), written.RootElement.GetProperty("resources").GetRawText());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>Publishing without a project id: one line naming the parameter, no manifest.</summary>
public class ManifestWithoutProjectTests
{
    [Fact]
    public async Task Publishing_without_a_project_id_stops_with_one_line_naming_the_parameter()
    {
        var directory = Directory.CreateTempSubdirectory("chatstack-manifest-").FullName;
        try
        {
            var path = Path.Combine(directory, "manifest.json");
            // Empty overrides anything a developer's user secrets might hold.
            using var appHost = AppHostProcess.Start(new Dictionary<string, string> { ["Parameters__gcp-project-id"] = "" },
                "--publisher", "manifest", "--output-path", path);

            var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(60));

            Assert.Equal(1, exitCode);
            var error = appHost.StandardError.Trim();
            Assert.StartsWith("ChatStack cannot publish: Parameter 'gcp-project-id' has no value: set Parameters:gcp-project-id", error);
            Assert.DoesNotContain("\n", error);
            Assert.DoesNotContain("   at ", appHost.StandardOutput + appHost.StandardError);
            Assert.False(File.Exists(path));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
