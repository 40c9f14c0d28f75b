using YamlDotNet.RepresentationModel;

namespace ChatStack.Tests.Deployment;

/// <summary>One of the Cloud Run files in <c>deploy/</c>, read as YAML: the container of a service or a job.</summary>
public sealed class CloudRunFile
{
    private CloudRunFile(string path, YamlMappingNode root)
    {
        Path = path;
        Root = root;
        var podSpec = root["kind"].ToString() switch
        {
            "Service" => At(root, "spec", "template", "spec"),
            "Job" => At(root, "spec", "template", "spec", "template", "spec"),
            var kind => throw new InvalidOperationException($"{path}: unexpected kind {kind}"),
        };
        PodSpec = podSpec;
        Container = (YamlMappingNode)((YamlSequenceNode)podSpec["containers"]).Children.Single();
    }

    public string Path { get; }

    public YamlMappingNode Root { get; }

    public YamlMappingNode PodSpec { get; }

    public YamlMappingNode Container { get; }

    public string Text => File.ReadAllText(Path);

    public static CloudRunFile Load(string fileName)
    {
        var path = System.IO.Path.Combine(PublishedManifest.RepositoryRoot, "deploy", fileName);
        return Parse(path, File.ReadAllText(path));
    }

    /// <summary>A file's text as given, for example as deploy/render.sh printed it.</summary>
    public static CloudRunFile Parse(string path, string text)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(text));
        return new CloudRunFile(path, (YamlMappingNode)yaml.Documents.Single().RootNode);
    }

    public string Image => Container["image"].ToString();

    public IReadOnlyList<string> Arguments => Container.Children.TryGetValue("args", out var args)
        ? ((YamlSequenceNode)args).Children.Select(a => a.ToString()).ToList()
        : [];

    public IReadOnlyList<int> ContainerPorts => Container.Children.TryGetValue("ports", out var ports)
        ? ((YamlSequenceNode)ports).Children.Select(p => int.Parse(((YamlMappingNode)p)["containerPort"].ToString())).ToList()
        : [];

    /// <summary>Each variable: a plain value, or the Secret Manager secret it comes from.</summary>
    public IReadOnlyDictionary<string, (string? Value, string? Secret)> Environment =>
        ((YamlSequenceNode)Container["env"]).Children.Cast<YamlMappingNode>().ToDictionary(
            v => v["name"].ToString(),
            v => v.Children.TryGetValue("valueFrom", out var from)
                ? ((string?)null, At((YamlMappingNode)from, "secretKeyRef")["name"].ToString())
                : (v["value"].ToString(), (string?)null));

    public string TemplateAnnotation(string name) => Root["kind"].ToString() == "Service"
        ? At(Root, "spec", "template", "metadata", "annotations")[name].ToString()
        : throw new InvalidOperationException("Only services have revision annotations.");

    public string ProbePath(string probe) => At(Container, probe, "httpGet")["path"].ToString();

    private static YamlMappingNode At(YamlMappingNode node, params string[] path) =>
        path.Aggregate(node, (current, key) => (YamlMappingNode)current[key]);
}
