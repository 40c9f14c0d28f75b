using System.Text.Json;
using System.Text.RegularExpressions;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Deployment;

/// <summary>
/// The manifest the AppHost writes in publish mode, made the way a user makes it:
/// <c>ChatStack.AppHost -- --publisher manifest --output-path PATH</c>, once per test class.
/// </summary>
public sealed partial class PublishedManifest : IAsyncLifetime
{
    public const string ProjectId = "chatstack-deploy-test";

    private readonly string _directory = Directory.CreateTempSubdirectory("chatstack-manifest-").FullName;

    public JsonElement Resources { get; private set; }

    public string Path => System.IO.Path.Combine(_directory, "manifest.json");

    public static string RepositoryRoot => System.IO.Path.GetDirectoryName(Projects.ChatStack_AppHost.ProjectPath)!;

    public async Task InitializeAsync()
    {
        using var appHost = AppHostProcess.Start(
            new Dictionary<string, string> { ["Parameters__gcp-project-id"] = ProjectId },
            "--publisher", "manifest", "--output-path", Path);
        var exitCode = await appHost.WaitForExitAsync(TimeSpan.FromSeconds(120));
        Assert.True(exitCode == 0, $"Publishing the manifest failed ({exitCode}).\nstdout:\n{appHost.StandardOutput}\nstderr:\n{appHost.StandardError}");

        using var document = JsonDocument.Parse(await File.ReadAllTextAsync(Path));
        Resources = document.RootElement.GetProperty("resources").Clone();
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    public JsonElement Resource(string name) => Resources.GetProperty(name);

    public IEnumerable<(string Name, JsonElement Resource)> OfType(string type) =>
        Resources.EnumerateObject().Where(r => r.Value.GetProperty("type").GetString() == type).Select(r => (r.Name, r.Value));

    public bool IsSecret(string parameter) =>
        Resource(parameter).GetProperty("inputs").GetProperty("value").TryGetProperty("secret", out var secret) && secret.GetBoolean();

    public static IReadOnlyDictionary<string, string> Environment(JsonElement resource) =>
        resource.TryGetProperty("env", out var env)
            ? env.EnumerateObject().ToDictionary(v => v.Name, v => v.Value.GetString()!)
            : new Dictionary<string, string>();

    public static IReadOnlyList<string> Arguments(JsonElement resource) =>
        resource.TryGetProperty("args", out var args) ? args.EnumerateArray().Select(a => a.GetString()!).ToList() : [];

    /// <summary>The parameter a manifest value refers to as a whole (<c>{name.value}</c>), or null.</summary>
    public static string? ParameterReference(string value) => ParameterPattern().Match(value) is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The resource whose http target port a manifest value refers to, or null.</summary>
    public static string? TargetPortReference(string value) => TargetPortPattern().Match(value) is { Success: true } m ? m.Groups[1].Value : null;

    [GeneratedRegex(@"^\{([a-z0-9-]+)\.value\}$")]
    private static partial Regex ParameterPattern();

    [GeneratedRegex(@"^\{([a-z0-9-]+)\.bindings\.http\.targetPort\}$")]
    private static partial Regex TargetPortPattern();
}
