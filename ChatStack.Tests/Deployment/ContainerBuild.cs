using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ChatStack.Tests.Deployment;

/// <summary>
/// Builds a service image the way the README does (dotnet publish /t:PublishContainer to an archive, no Docker).
/// This machine cannot reach mcr.microsoft.com, so the base image is deploy/ci/base-image.sh's Debian stand-in for
/// Microsoft's aspnet image, served from a throwaway local registry (docker-registry) that skopeo fills.
/// </summary>
public static class ContainerBuild
{
    private static readonly string[] Tools = ["debootstrap", "umoci", "skopeo", "docker-registry", "chroot"];

    /// <summary>What this machine lacks to build the archive: tools from Debian packages, and root for debootstrap.</summary>
    public static IReadOnlyList<string> Missing()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':');
        var missing = Tools.Where(tool => !path.Any(dir => File.Exists(Path.Combine(dir, tool)))).ToList();
        if (!Environment.IsPrivilegedProcess)
        {
            missing.Add("root");
        }

        return missing;
    }

    /// <summary>The base image as an OCI layout, cached across runs (keyed on Debian release and runtime version).</summary>
    public static async Task<string> BaseImageAsync()
    {
        var cache = Environment.GetEnvironmentVariable("CHATSTACK_CONTAINER_BASE_CACHE") ?? "/tmp/chatstack-container-base";
        var script = Path.Combine(PublishedManifest.RepositoryRoot, "deploy", "ci", "base-image.sh");
        var output = await RunAsync("bash", [script, Path.Combine(cache, "oci")], TimeSpan.FromMinutes(10));
        return output.Trim().Split('\n')[^1];
    }

    public static async Task<string> RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', start.ArgumentList)} exited {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }

        return await stdout;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>A docker-registry on 127.0.0.1 with its storage in a temporary folder, stopped and deleted on dispose.</summary>
public sealed class LocalRegistry : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("chatstack-registry-").FullName;
    private readonly Process _process;

    private LocalRegistry()
    {
        Port = ContainerBuild.FreePort();
        var config = Path.Combine(_directory, "config.yml");
        File.WriteAllText(config, $"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {Path.Combine(_directory, "data")}\nhttp:\n  addr: 127.0.0.1:{Port}\n");
        _process = Process.Start(new ProcessStartInfo("docker-registry", ["serve", config]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Port { get; }

    public string Host => $"127.0.0.1:{Port}";

    public static async Task<LocalRegistry> StartAsync()
    {
        var registry = new LocalRegistry();
        using var http = new HttpClient();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var response = await http.GetAsync($"http://{registry.Host}/v2/");
                if (response.IsSuccessStatusCode)
                {
                    return registry;
                }
            }
            catch (HttpRequestException) when (attempt < 50 && !registry._process.HasExited)
            {
            }

            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>An image archive as the SDK writes it (an OCI layout or a docker-save tarball, gzipped or not).</summary>
public sealed class ImageArchive
{
    private readonly Dictionary<string, byte[]> _files;

    private ImageArchive(Dictionary<string, byte[]> files)
    {
        _files = files;
        if (files.TryGetValue("index.json", out var index))
        {
            var descriptor = JsonDocument.Parse(index).RootElement.GetProperty("manifests")[0];
            Name = descriptor.GetProperty("annotations").GetProperty("io.containerd.image.name").GetString()!;
            var manifest = JsonDocument.Parse(Blob(descriptor.GetProperty("digest").GetString()!)).RootElement;
            Config = JsonDocument.Parse(Blob(manifest.GetProperty("config").GetProperty("digest").GetString()!)).RootElement.Clone();
            Layers = manifest.GetProperty("layers").EnumerateArray().Select(l => Blob(l.GetProperty("digest").GetString()!)).ToList();
        }
        else
        {
            var manifest = JsonDocument.Parse(files["manifest.json"]).RootElement[0];
            Name = manifest.GetProperty("RepoTags")[0].GetString()!;
            Config = JsonDocument.Parse(files[manifest.GetProperty("Config").GetString()!]).RootElement.Clone();
            Layers = manifest.GetProperty("Layers").EnumerateArray().Select(l => files[l.GetString()!]).ToList();
        }
    }

    /// <summary>The image reference recorded in the archive.</summary>
    public string Name { get; }

    /// <summary>The OCI image config: its <c>config</c> holds Entrypoint, User, ExposedPorts, Env.</summary>
    public JsonElement Config { get; }

    public IReadOnlyList<byte[]> Layers { get; }

    public static async Task<ImageArchive> ReadAsync(string path)
    {
        var files = new Dictionary<string, byte[]>();
        await using var file = File.OpenRead(path);
        var gzipped = file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
        file.Position = 0;
        await using Stream stream = gzipped ? new GZipStream(file, CompressionMode.Decompress) : file;
        await using var tar = new TarReader(stream);
        while (await tar.GetNextEntryAsync() is { } entry)
        {
            if (entry.DataStream is { } data)
            {
                using var buffer = new MemoryStream();
                await data.CopyToAsync(buffer);
                files[entry.Name.TrimStart('.', '/')] = buffer.ToArray();
            }
        }

        return new ImageArchive(files);
    }

    /// <summary>
    /// Unpacks the layers in order into <paramref name="rootfs"/>: the file system a container would see. GNU tar,
    /// because it keeps owners, devices and hard links the way a container runtime does.
    /// </summary>
    public async Task UnpackAsync(string rootfs)
    {
        var layerFile = Path.Combine(Path.GetDirectoryName(rootfs)!, "layer.tar.gz");
        foreach (var layer in Layers)
        {
            await File.WriteAllBytesAsync(layerFile, layer);
            await ContainerBuild.RunAsync("tar", ["-xzf", layerFile, "-C", rootfs], TimeSpan.FromMinutes(2));
        }

        File.Delete(layerFile);
    }

    private byte[] Blob(string digest) => _files[$"blobs/sha256/{digest["sha256:".Length..]}"];

    public override string ToString() => Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(Config));
}
