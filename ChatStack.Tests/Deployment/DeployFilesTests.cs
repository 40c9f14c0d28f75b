using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ChatStack.Tests.Deployment;

/// <summary>
/// deploy/ cannot drift from the AppHost: every variable and argument the manifest declares for a service is set
/// the same way in its Cloud Run file (a parameter as the placeholder of its name in upper snake case, a secret parameter from the
/// Secret Manager secret of the same name), and the images are the ones the projects build.
/// </summary>
public partial class DeployFilesTests(PublishedManifest manifest) : IClassFixture<PublishedManifest>
{
    private static readonly (string Resource, string File, string Project)[] Deployed =
    [
        ("chat-api", "chat-api.service.yaml", "ChatStack.ChatApi"),
        ("analytics-worker", "analytics-worker.service.yaml", "ChatStack.AnalyticsWorker"),
        ("provisioner", "provisioner.job.yaml", "ChatStack.Provisioner"),
    ];

    public static TheoryData<string, string> Files
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var (resource, file, _) in Deployed)
            {
                data.Add(resource, file);
            }

            return data;
        }
    }

    public static TheoryData<string, string, string> Images
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            foreach (var (resource, file, project) in Deployed)
            {
                data.Add(resource, file, project);
            }

            return data;
        }
    }

    [Fact]
    public async Task Rendering_fills_every_placeholder_keeps_an_empty_origin_list_a_string_and_refuses_an_unset_variable()
    {
        var file = Path.Combine(PublishedManifest.RepositoryRoot, "deploy", "chat-api.service.yaml");
        var variables = Regex.Matches(File.ReadAllText(file), @"\$\{([A-Z0-9_]+)\}").Select(m => m.Groups[1].Value).Distinct()
            .ToDictionary(name => name, name => name == "CHAT_API_CORS_ORIGINS" ? "" : "x-" + name);

        var (exitCode, output, _) = await RenderAsync(file, variables);

        Assert.Equal(0, exitCode);
        Assert.DoesNotContain("${", output);
        var rendered = CloudRunFile.Parse(file, output).Environment;
        Assert.Equal("", rendered["Cors__AllowedOrigins"].Value);
        Assert.Equal("x-CHAT_MODEL", rendered["Chat__Models__default__ProviderModelId"].Value);

        variables.Remove("CHAT_MODEL");
        var (refusedCode, refusedOutput, error) = await RenderAsync(file, variables);
        Assert.Equal(1, refusedCode);
        Assert.Equal("", refusedOutput);
        Assert.Contains("CHAT_MODEL is not set", error);
    }

    private static async Task<(int ExitCode, string Output, string Error)> RenderAsync(string file, IReadOnlyDictionary<string, string> variables)
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(PublishedManifest.RepositoryRoot, "deploy", "render.sh"), file])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in Regex.Matches(File.ReadAllText(file), @"\$\{([A-Z0-9_]+)\}").Select(m => m.Groups[1].Value))
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in variables)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await error);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void The_cloud_run_file_sets_every_variable_of_the_manifest_and_no_other(string resource, string file)
    {
        var service = manifest.Resource(resource);
        var cloudRun = CloudRunFile.Load(file);
        var expected = PublishedManifest.Environment(service).ToDictionary(v => v.Key, v => Expected(service, v.Value));

        Assert.Equal(expected.Keys.Order(), cloudRun.Environment.Keys.Order());
        foreach (var (name, value) in expected)
        {
            Assert.True(value == cloudRun.Environment[name], $"{file}: {name} is {cloudRun.Environment[name]}, the manifest says {value}");
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void The_cloud_run_file_passes_the_arguments_and_port_of_the_manifest(string resource, string file)
    {
        var service = manifest.Resource(resource);
        var cloudRun = CloudRunFile.Load(file);

        Assert.Equal(PublishedManifest.Arguments(service).Select(a => Expected(service, a).Value), cloudRun.Arguments);
        if (TargetPort(service) is { } port)
        {
            Assert.Equal([port], cloudRun.ContainerPorts);
        }
        else
        {
            Assert.Empty(cloudRun.ContainerPorts);
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public async Task The_image_is_the_one_the_project_builds_and_runs_as_its_own_service_account(string resource, string file, string project)
    {
        var cloudRun = CloudRunFile.Load(file);
        var repository = await ContainerRepositoryAsync(project);

        Assert.Equal($"${{GCP_REGION}}-docker.pkg.dev/${{GCP_PROJECT_ID}}/{repository}:${{IMAGE_TAG}}", cloudRun.Image);
        Assert.Equal($"{resource}@${{GCP_PROJECT_ID}}.iam.gserviceaccount.com", cloudRun.PodSpec["serviceAccountName"].ToString());
    }

    [Fact]
    public void Every_placeholder_is_a_parameter_of_the_manifest_or_the_image_tag()
    {
        var parameters = manifest.OfType("parameter.v0").Select(p => Placeholder(p.Name)).Append("IMAGE_TAG").ToHashSet();
        foreach (var (_, file, _) in Deployed)
        {
            var used = PlaceholderPattern().Matches(CloudRunFile.Load(file).Text).Select(m => m.Groups[1].Value).Distinct();
            Assert.All(used, name => Assert.True(parameters.Contains(name), $"{file} uses ${{{name}}}, which is no parameter of the manifest"));
        }
    }

    [Fact]
    public void The_step_by_step_creates_every_secret_of_the_manifest_and_lists_it()
    {
        var secrets = manifest.OfType("parameter.v0").Where(p => manifest.IsSecret(p.Name)).Select(p => p.Name).Order().ToList();
        var readme = File.ReadAllText(Path.Combine(PublishedManifest.RepositoryRoot, "deploy", "README.md"));

        Assert.Equal(secrets, Regex.Matches(readme, @"gcloud secrets create ([a-z0-9-]+)").Select(m => m.Groups[1].Value).Order());
        Assert.All(secrets, name => Assert.Contains($"| `{name}` | secret `{name}` |", readme));
    }

    [Fact]
    public void The_worker_keeps_one_instance_with_cpu_always_allocated_and_both_services_probe_health()
    {
        var worker = CloudRunFile.Load("analytics-worker.service.yaml");
        Assert.Equal("1", worker.TemplateAnnotation("autoscaling.knative.dev/minScale"));
        Assert.Equal("false", worker.TemplateAnnotation("run.googleapis.com/cpu-throttling"));

        foreach (var file in new[] { worker, CloudRunFile.Load("chat-api.service.yaml") })
        {
            Assert.Equal("/health", file.ProbePath("startupProbe"));
            Assert.Equal("/alive", file.ProbePath("livenessProbe"));
        }
    }

    /// <summary>How the Cloud Run file must carry a manifest value.</summary>
    private (string? Value, string? Secret) Expected(JsonElement service, string manifestValue)
    {
        if (PublishedManifest.ParameterReference(manifestValue) is { } parameter)
        {
            return manifest.IsSecret(parameter) ? (null, parameter) : ($"${{{Placeholder(parameter)}}}", null);
        }

        if (PublishedManifest.TargetPortReference(manifestValue) is not null)
        {
            return (TargetPort(service)?.ToString(), null);
        }

        Assert.DoesNotContain("{", manifestValue); // an expression this test does not know yet
        return (manifestValue, null);
    }

    private static int? TargetPort(JsonElement service) =>
        service.TryGetProperty("bindings", out var bindings) && bindings.GetProperty("http").TryGetProperty("targetPort", out var port)
            ? port.GetInt32()
            : null;

    private static string Placeholder(string parameter) => parameter.ToUpperInvariant().Replace('-', '_');

    private static async Task<string> ContainerRepositoryAsync(string project)
    {
        var start = new ProcessStartInfo("dotnet", ["msbuild", Path.Combine(PublishedManifest.RepositoryRoot, project), "-nologo", "-getProperty:ContainerRepository"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        return output.Trim();
    }

    [GeneratedRegex(@"\$\{([A-Z0-9_]+)\}")]
    private static partial Regex PlaceholderPattern();
}
