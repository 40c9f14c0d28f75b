namespace ChatStack.Hosting.GoogleCloud;

/// <summary>How an emulator process is run.</summary>
public enum EmulatorRuntime
{
    /// <summary>The JVM of the local Google Cloud SDK, started directly (no Docker needed).</summary>
    Executable,

    /// <summary>Google's <c>google-cloud-cli:emulators</c> image, for machines with a container engine.</summary>
    Container,
}

/// <summary>
/// Options for an emulator resource, bound from <c>GoogleCloud:Emulators</c> (all emulators) and
/// <c>GoogleCloud:Emulators:{name}</c> (one emulator), then from the callback given to <c>Add…Emulator</c>.
/// </summary>
public sealed class GoogleCloudEmulatorOptions
{
    /// <summary>Executable (default) or Container.</summary>
    public EmulatorRuntime Runtime { get; set; } = EmulatorRuntime.Executable;

    /// <summary>A fixed host port. Leave unset to let Aspire pick a free one.</summary>
    public int? Port { get; set; }

    /// <summary>
    /// JVM flags. The defaults keep an emulator near 230 MB under load (about half the JVM's own default)
    /// at the same throughput, and start it faster. Flags from configuration replace these rather than add to them.
    /// </summary>
    public List<string> JvmOptions { get; set; } = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];

    /// <summary>Image for <see cref="EmulatorRuntime.Container"/>.</summary>
    public string ContainerImage { get; set; } = "gcr.io/google.com/cloudsdktool/google-cloud-cli";

    /// <summary>Image tag for <see cref="EmulatorRuntime.Container"/>.</summary>
    public string ContainerTag { get; set; } = "emulators";
}
