using ChatStack.Hosting.GoogleCloud;
using ChatStack.Tests.Support;
using Microsoft.Extensions.Configuration;

namespace ChatStack.Tests.Hosting;

public class GoogleCloudSdkTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => KeyValuePair.Create(v.Key, (string?)v.Value))).Build();

    private static Func<string, string?> Env(params (string Key, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Key == name).Value;

    [Fact]
    public void Configured_sdk_path_wins_over_path()
    {
        using var sdk = new FakeSdk();
        var root = GoogleCloudSdk.LocateSdkRoot(Config((GoogleCloudSdk.SdkPathKey, sdk.Root)), Env(("PATH", "/nonexistent")));
        Assert.Equal(sdk.Root, root);
    }

    [Fact]
    public void Gcloud_on_path_is_followed_through_its_symbolic_link_to_the_sdk_root()
    {
        using var sdk = new FakeSdk();
        var linkDir = Directory.CreateTempSubdirectory("chatstack-bin-").FullName;
        try
        {
            File.CreateSymbolicLink(Path.Combine(linkDir, "gcloud"), Path.Combine(sdk.Root, "bin", "gcloud"));
            var root = GoogleCloudSdk.LocateSdkRoot(Config(), Env(("PATH", $"/nonexistent:{linkDir}")));
            Assert.Equal(sdk.Root, root);
        }
        finally
        {
            Directory.Delete(linkDir, recursive: true);
        }
    }

    [Fact]
    public void Missing_sdk_names_what_to_install()
    {
        var error = Assert.Throws<GoogleCloudEmulatorException>(() =>
            GoogleCloudSdk.LocateSdkRoot(Config(), Env(("PATH", "/nonexistent"))));
        Assert.Contains("apt-get install google-cloud-cli", error.Message);
        Assert.Contains("GoogleCloud__SdkPath", error.Message);
    }

    [Fact]
    public void Configured_sdk_path_that_does_not_exist_is_reported_as_such()
    {
        var error = Assert.Throws<GoogleCloudEmulatorException>(() =>
            GoogleCloudSdk.LocateSdkRoot(Config((GoogleCloudSdk.SdkPathKey, "/no/such/sdk")), Env()));
        Assert.Contains("'/no/such/sdk'", error.Message);
    }

    [Fact]
    public void Missing_emulator_component_names_the_component_and_package()
    {
        using var sdk = new FakeSdk(withPubSub: false);
        var error = Assert.Throws<GoogleCloudEmulatorException>(() => GoogleCloudSdk.ComponentFile(
            sdk.Root, "platform/pubsub-emulator/lib", "cloud-pubsub-emulator-*.jar", "pubsub-emulator", "google-cloud-cli-pubsub-emulator"));
        Assert.Contains("gcloud components install pubsub-emulator", error.Message);
        Assert.Contains("apt-get install google-cloud-cli-pubsub-emulator", error.Message);
    }

    [Fact]
    public void Java_comes_from_java_home_before_path()
    {
        using var sdk = new FakeSdk();
        var javaHome = Directory.CreateTempSubdirectory("chatstack-jdk-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(javaHome, "bin"));
            File.WriteAllText(Path.Combine(javaHome, "bin", "java"), "");
            var java = GoogleCloudSdk.LocateJava(Config(), Env(("JAVA_HOME", javaHome), ("PATH", Path.GetDirectoryName(sdk.JavaPath)!)));
            Assert.Equal(Path.Combine(javaHome, "bin", "java"), java);
        }
        finally
        {
            Directory.Delete(javaHome, recursive: true);
        }
    }

    [Fact]
    public void Missing_java_names_what_to_install()
    {
        var error = Assert.Throws<GoogleCloudEmulatorException>(() =>
            GoogleCloudSdk.LocateJava(Config(), Env(("PATH", "/nonexistent"))));
        Assert.Contains("openjdk-17-jre-headless", error.Message);
    }
}
