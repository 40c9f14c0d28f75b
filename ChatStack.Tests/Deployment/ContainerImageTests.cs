using System.Reflection.PortableExecutable;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ChatStack.Tests.Support;

namespace ChatStack.Tests.Deployment;

/// <summary>
/// Runs where the tools to build an image archive are (CI installs them: .ci/run). Elsewhere it is skipped with
/// the reason, except with CI=true, where a missing tool is a failure.
/// </summary>
public sealed class ContainerBuildFactAttribute : FactAttribute
{
    public ContainerBuildFactAttribute()
    {
        var missing = ContainerBuild.Missing();
        if (missing.Count > 0 && Environment.GetEnvironmentVariable("CI") != "true")
        {
            Skip = $"Building an image archive here needs {string.Join(", ", missing)} (apt-get install debootstrap umoci skopeo docker-registry, as root).";
        }
    }
}

/// <summary>The service images: built by the .NET SDK without Docker, non-root, on port 8080, stopped cleanly by SIGTERM.</summary>
public class ContainerImageTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("ChatStack.ChatApi", "mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled-extra", true)]
    [InlineData("ChatStack.AnalyticsWorker", "mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled-extra", true)]
    [InlineData("ChatStack.Provisioner", "mcr.microsoft.com/dotnet/runtime:10.0-noble-chiseled-extra", false)]
    public async Task A_product_image_is_microsofts_chiseled_image_run_by_a_non_root_user(string project, string baseImage, bool servesHttp)
    {
        var json = await ContainerBuild.RunAsync("dotnet", [
            "msbuild", Path.Combine(PublishedManifest.RepositoryRoot, project), "-nologo", "-t:ComputeContainerConfig", "-p:Configuration=Release",
            "-getProperty:ContainerBaseImage", "-getProperty:ContainerUser", "-getProperty:PublishReadyToRun", "-getItem:ContainerPort", "-getItem:ContainerEnvironmentVariable",
        ], TimeSpan.FromMinutes(2));
        using var result = JsonDocument.Parse(json);
        var properties = result.RootElement.GetProperty("Properties");
        var items = result.RootElement.GetProperty("Items");

        Assert.Equal(baseImage, properties.GetProperty("ContainerBaseImage").GetString());
        Assert.Equal("1654", properties.GetProperty("ContainerUser").GetString());
        Assert.Equal("true", properties.GetProperty("PublishReadyToRun").GetString());
        var ports = items.TryGetProperty("ContainerPort", out var p) ? p.EnumerateArray().Select(i => i.GetProperty("Identity").GetString()).ToList() : [];
        Assert.Equal(servesHttp ? ["8080"] : [], ports);
        var env = items.TryGetProperty("ContainerEnvironmentVariable", out var e)
            ? e.EnumerateArray().ToDictionary(i => i.GetProperty("Identity").GetString()!, i => i.GetProperty("Value").GetString())
            : [];
        Assert.Equal(servesHttp ? "8080" : null, env.GetValueOrDefault("ASPNETCORE_HTTP_PORTS"));
    }

    [ContainerBuildFact]
    public async Task The_chat_api_archive_built_without_docker_runs_as_uid_1654_answers_alive_and_stops_on_sigterm()
    {
        Assert.True(ContainerBuild.Missing().Count == 0, $"Missing to build an image archive: {string.Join(", ", ContainerBuild.Missing())}. .ci/run installs them.");
        var work = Directory.CreateTempSubdirectory("chatstack-image-").FullName;
        try
        {
            var watch = Stopwatch.StartNew();
            var baseLayout = await ContainerBuild.BaseImageAsync();
            output.WriteLine($"Base image {baseLayout} ready after {watch.Elapsed.TotalSeconds:F0} s");

            await using var registry = await LocalRegistry.StartAsync();
            var tag = baseLayout[(baseLayout.LastIndexOf(':') + 1)..];
            var baseImage = $"{registry.Host}/chatstack/aspnet-ci:{tag}";
            await ContainerBuild.RunAsync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", $"oci:{baseLayout}", $"docker://{baseImage}"], TimeSpan.FromMinutes(2));

            var archivePath = Path.Combine(work, "chat-api.tar.gz");
            watch.Restart();
            await ContainerBuild.RunAsync("dotnet", [
                "publish", Path.Combine(PublishedManifest.RepositoryRoot, "ChatStack.ChatApi"), "-c", "Release", "-nologo", "-v", "q",
                "/t:PublishContainer", $"-p:ContainerBaseImage={baseImage}", $"-p:ContainerArchiveOutputPath={archivePath}",
            ], TimeSpan.FromMinutes(10), new Dictionary<string, string> { ["DOTNET_CONTAINER_INSECURE_REGISTRIES"] = registry.Host });
            output.WriteLine($"dotnet publish /t:PublishContainer took {watch.Elapsed.TotalSeconds:F0} s; archive {new FileInfo(archivePath).Length / 1_000_000} MB");

            var archive = await ImageArchive.ReadAsync(archivePath);
            output.WriteLine(archive.ToString());
            var config = archive.Config.GetProperty("config");
            Assert.Contains("chatstack/chat-api", archive.Name);
            Assert.Equal(["dotnet", "/app/ChatStack.ChatApi.dll"], config.GetProperty("Entrypoint").EnumerateArray().Select(a => a.GetString()));
            Assert.Equal("1654", config.GetProperty("User").GetString());
            Assert.Equal(["8080/tcp"], config.GetProperty("ExposedPorts").EnumerateObject().Select(p => p.Name));
            var env = config.GetProperty("Env").EnumerateArray().Select(v => v.GetString()!).ToList();
            Assert.Contains("ASPNETCORE_HTTP_PORTS=8080", env);

            await RunImageAsync(archive, Path.Combine(work, "rootfs"));
        }
        finally
        {
            // Never recurse into a /proc that is still mounted.
            if (!File.ReadAllText("/proc/self/mounts").Contains($" {work}/", StringComparison.Ordinal))
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    /// <summary>
    /// Starts the image's entrypoint the way a container runtime would — its file system (chroot), its user, its
    /// environment and working directory — then probes /alive and stops it with SIGTERM, as Cloud Run does.
    /// </summary>
    private async Task RunImageAsync(ImageArchive archive, string rootfs)
    {
        Directory.CreateDirectory(rootfs);
        await archive.UnpackAsync(rootfs);
        // Precompiled, so a new instance JITs less before it answers.
        using (var app = new PEReader(File.OpenRead(Path.Combine(rootfs, "app", "ChatStack.ChatApi.dll"))))
        {
            Assert.True(app.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size > 0, "ChatStack.ChatApi.dll in the image is ReadyToRun code");
        }

        var config = archive.Config.GetProperty("config");
        var port = ContainerBuild.FreePort(); // 8080 may be taken on this machine; Cloud Run's is free
        var closed = ContainerBuild.FreePort();
        string[] environment =
        [
            .. config.GetProperty("Env").EnumerateArray().Select(v => v.GetString()!),
            $"ASPNETCORE_HTTP_PORTS={port}",
            "GOOGLE_CLOUD_PROJECT=chatstack-image-test",
            $"Identity__SigningKey={Convert.ToBase64String(Encoding.UTF8.GetBytes(new string('k', 48)))}",
            $"DualWrite__ContentHashKey={Convert.ToBase64String(Encoding.UTF8.GetBytes(new string('h', 48)))}",
            // Nothing listens there: /alive must not depend on Google Cloud being reachable.
            $"FIRESTORE_EMULATOR_HOST=127.0.0.1:{closed}",
            $"PUBSUB_EMULATOR_HOST=127.0.0.1:{closed}",
        ];
        var entrypoint = string.Join(' ', config.GetProperty("Entrypoint").EnumerateArray().Select(a => a.GetString()));
        var command = $"cd {config.GetProperty("WorkingDir").GetString()} && exec {entrypoint}";

        await ContainerBuild.RunAsync("mount", ["-t", "proc", "proc", Path.Combine(rootfs, "proc")], TimeSpan.FromSeconds(10));
        try
        {
            var start = new ProcessStartInfo("chroot", [$"--userspec={config.GetProperty("User").GetString()}:{config.GetProperty("User").GetString()}", rootfs,
                "/usr/bin/env", "-i", .. environment, "/bin/sh", "-c", command])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var log = new StringBuilder();
            process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
                var deadline = DateTime.UtcNow.AddSeconds(60);
                HttpResponseMessage? alive = null;
                while (alive is null && DateTime.UtcNow < deadline && !process.HasExited)
                {
                    try
                    {
                        alive = await http.GetAsync($"http://127.0.0.1:{port}/alive");
                    }
                    catch (HttpRequestException)
                    {
                        await Task.Delay(250);
                    }
                }

                Assert.True(alive?.IsSuccessStatusCode == true, $"The image did not answer /alive.\n{log}");
                var uid = File.ReadLines($"/proc/{process.Id}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal));
                Assert.Equal("1654", uid.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);

                var stopping = Stopwatch.StartNew();
                Signals.Terminate(process.Id);
                // Cloud Run sends SIGKILL 10 s after SIGTERM.
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await process.WaitForExitAsync(grace.Token);
                output.WriteLine($"Stopped {stopping.Elapsed.TotalSeconds:F1} s after SIGTERM, exit code {process.ExitCode}");
                output.WriteLine(log.ToString());
                Assert.Equal(0, process.ExitCode);
                Assert.Contains("Application is shutting down", log.ToString());
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            await ContainerBuild.RunAsync("umount", [Path.Combine(rootfs, "proc")], TimeSpan.FromSeconds(10));
        }
    }
}
