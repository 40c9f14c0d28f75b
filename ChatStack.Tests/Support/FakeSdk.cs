namespace ChatStack.Tests.Support;

/// <summary>A throwaway folder laid out like a Google Cloud SDK, for discovery tests.</summary>
public sealed class FakeSdk : IDisposable
{
    public FakeSdk(bool withPubSub = true, bool withFirestore = true)
    {
        Root = Directory.CreateTempSubdirectory("chatstack-sdk-").FullName;
        Directory.CreateDirectory(Path.Combine(Root, "bin"));
        Directory.CreateDirectory(Path.Combine(Root, "platform"));
        File.WriteAllText(Path.Combine(Root, "bin", "gcloud"), "#!/bin/sh\n");
        if (withPubSub)
        {
            Directory.CreateDirectory(Path.Combine(Root, "platform/pubsub-emulator/lib"));
            File.WriteAllText(Path.Combine(Root, "platform/pubsub-emulator/lib/cloud-pubsub-emulator-0.8.20-all.jar"), "");
        }

        if (withFirestore)
        {
            Directory.CreateDirectory(Path.Combine(Root, "platform/cloud-firestore-emulator"));
            File.WriteAllText(Path.Combine(Root, "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"), "");
        }

        JavaPath = Path.Combine(Root, "java");
        File.WriteAllText(JavaPath, "#!/bin/sh\n");
    }

    public string Root { get; }

    public string JavaPath { get; }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
