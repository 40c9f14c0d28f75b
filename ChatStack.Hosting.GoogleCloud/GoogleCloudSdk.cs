using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Hosting.GoogleCloud;

/// <summary>Finds the Google Cloud SDK and the Java runtime its emulators need.</summary>
public static class GoogleCloudSdk
{
    /// <summary>Configuration key (or environment variable <c>GoogleCloud__SdkPath</c>) naming the SDK root.</summary>
    public const string SdkPathKey = "GoogleCloud:SdkPath";

    /// <summary>Configuration key naming the <c>java</c> executable to start the emulators with.</summary>
    public const string JavaPathKey = "GoogleCloud:JavaPath";

    /// <summary>
    /// The SDK root: <c>GoogleCloud:SdkPath</c>, else <c>CLOUDSDK_ROOT_DIR</c>, else the folder above the
    /// <c>bin/gcloud</c> found on PATH (symbolic links resolved, as Debian's package links /usr/bin/gcloud).
    /// </summary>
    public static string LocateSdkRoot(IConfiguration configuration, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var configured = configuration[SdkPathKey];
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Directory.Exists(configured)
                ? Path.GetFullPath(configured)
                : throw new GoogleCloudEmulatorException(
                    $"The Google Cloud SDK folder '{configured}' set by {SdkPathKey} does not exist. " +
                    "Point it at the SDK root (the folder that holds bin/gcloud and platform/), or remove the setting to use gcloud from PATH.");
        }

        var rootDir = environment("CLOUDSDK_ROOT_DIR");
        if (!string.IsNullOrWhiteSpace(rootDir) && Directory.Exists(rootDir))
        {
            return Path.GetFullPath(rootDir);
        }

        var gcloud = FindOnPath("gcloud", environment);
        if (gcloud is not null)
        {
            var resolved = ResolveLinks(gcloud);
            var binDir = Path.GetDirectoryName(resolved);
            var root = binDir is null ? null : Path.GetDirectoryName(binDir);
            if (root is not null && Directory.Exists(Path.Combine(root, "platform")))
            {
                return root;
            }
        }

        throw new GoogleCloudEmulatorException(
            "The Google Cloud SDK was not found: no 'gcloud' on PATH and no GoogleCloud:SdkPath setting. " +
            "Install the Google Cloud CLI with its emulator components (Debian/Ubuntu: apt-get install google-cloud-cli " +
            "google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator; elsewhere: gcloud components install " +
            "pubsub-emulator cloud-firestore-emulator), or set GoogleCloud__SdkPath to the SDK folder.");
    }

    /// <summary>The <c>java</c> executable: <c>GoogleCloud:JavaPath</c>, else <c>JAVA_HOME</c>, else PATH.</summary>
    public static string LocateJava(IConfiguration configuration, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var configured = configuration[JavaPathKey];
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return File.Exists(configured)
                ? configured
                : throw new GoogleCloudEmulatorException(
                    $"The Java executable '{configured}' set by {JavaPathKey} does not exist. Point it at a Java 17+ 'java', or remove the setting to use java from JAVA_HOME or PATH.");
        }

        var javaHome = environment("JAVA_HOME");
        if (!string.IsNullOrWhiteSpace(javaHome))
        {
            var candidate = Path.Combine(javaHome, "bin", ExecutableName("java"));
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return FindOnPath("java", environment) ?? throw new GoogleCloudEmulatorException(
            "Java was not found, and the Pub/Sub and Firestore emulators run on it: no 'java' on PATH, in JAVA_HOME or in " +
            $"{JavaPathKey}. Install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME.");
    }

    /// <summary>A file of an SDK component, with an error that names the component to install when absent.</summary>
    public static string ComponentFile(string sdkRoot, string relativeFolder, string searchPattern, string component, string debianPackage)
    {
        var folder = Path.Combine(sdkRoot, relativeFolder);
        var match = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, searchPattern).Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        return match ?? throw new GoogleCloudEmulatorException(
            $"The Google Cloud SDK at '{sdkRoot}' has no {component} component ({Path.Combine(relativeFolder, searchPattern)} is missing). " +
            $"Install it: gcloud components install {component} (Debian/Ubuntu: apt-get install {debianPackage}).");
    }

    internal static string? FindOnPath(string name, Func<string, string?> environment)
    {
        var path = environment("PATH");
        if (string.IsNullOrEmpty(path))
        {
            return null;
        }

        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, ExecutableName(name));
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string ExecutableName(string name) =>
        RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? name + ".exe" : name;

    private static string ResolveLinks(string path)
    {
        var target = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true);
        return target?.FullName ?? Path.GetFullPath(path);
    }
}
