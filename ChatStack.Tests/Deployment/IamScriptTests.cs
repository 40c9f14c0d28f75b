using System.Diagnostics;
using System.Runtime.Versioning;

namespace ChatStack.Tests.Deployment;

/// <summary>
/// deploy/iam.sh against a stand-in <c>gcloud</c> (and a <c>sleep</c> that returns at once): no Google Cloud project
/// is needed to check how the script treats gcloud's answers.
/// </summary>
[UnsupportedOSPlatform("windows")] // bash scripts on PATH need the executable bit, as deploy/ needs bash
public sealed class IamScriptTests : IDisposable
{
    private readonly string _bin = Directory.CreateTempSubdirectory("chatstack-iam-").FullName;

    public void Dispose() => Directory.Delete(_bin, recursive: true);

    private string Log => Path.Combine(_bin, "calls.log");

    /// <summary>A gcloud that knows no account yet and answers the first <paramref name="refusals"/> grants with <paramref name="error"/>.</summary>
    private void FakeGcloud(int refusals, string error)
    {
        File.Delete(Path.Combine(_bin, "grants"));
        Write("gcloud", $$"""
            #!/usr/bin/env bash
            echo "gcloud $*" >>"{{Log}}"
            case "$*" in
              "iam service-accounts describe"*) exit 1 ;;
              *add-iam-policy-binding*)
                count=$(cat "{{_bin}}/grants" 2>/dev/null || echo 0); echo $((count + 1)) >"{{_bin}}/grants"
                if [ "$count" -lt {{refusals}} ]; then echo "{{error}}" >&2; exit 1; fi
                echo "Updated IAM policy." >&2 ;;
            esac
            """);
        Write("sleep", $"""
            #!/usr/bin/env bash
            echo "sleep $*" >>"{Log}"
            """);
    }

    private void Write(string name, string script)
    {
        var path = Path.Combine(_bin, name);
        File.WriteAllText(path, script.ReplaceLineEndings("\n") + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private async Task<(int ExitCode, string Error, string[] Calls)> RunAccountsAsync()
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(PublishedManifest.RepositoryRoot, "deploy", "iam.sh"), "accounts"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["PATH"] = _bin + Path.PathSeparator + start.Environment["PATH"];
        start.Environment["GCP_PROJECT_ID"] = "test-project";

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        await output;
        return (process.ExitCode, await error, File.Exists(Log) ? File.ReadAllLines(Log) : []);
    }

    private const string NotYetUsable =
        "ERROR: (gcloud.projects.add-iam-policy-binding) INVALID_ARGUMENT: Service account chat-api@test-project.iam.gserviceaccount.com does not exist.";

    [Fact]
    public async Task Grants_to_just_created_accounts_are_tried_again_until_the_accounts_are_usable()
    {
        FakeGcloud(refusals: 3, NotYetUsable);

        var (exitCode, error, calls) = await RunAccountsAsync();

        Assert.True(exitCode == 0, error);
        Assert.Equal(3, calls.Count(c => c.StartsWith("gcloud iam service-accounts create")));
        Assert.Equal(["sleep 10", "sleep 10", "sleep 10"], calls.Where(c => c.StartsWith("sleep")));
        // Four project roles and the three secrets, each granted once it went through.
        Assert.Equal(3 + 4 + ManifestTests.Secrets.Length, calls.Count(c => c.Contains("add-iam-policy-binding")));
        Assert.Contains("roles/datastore.indexAdmin", calls.Last(c => c.StartsWith("gcloud projects")));
        // Every secret of the manifest, to the chat API only, to read.
        var secrets = calls.Where(c => c.StartsWith("gcloud secrets add-iam-policy-binding")).ToList();
        Assert.Equal(ManifestTests.Secrets, secrets.Select(c => c.Split(' ')[3]).Distinct().Order());
        Assert.All(secrets, c => Assert.EndsWith("--member serviceAccount:chat-api@test-project.iam.gserviceaccount.com --role roles/secretmanager.secretAccessor", c));
    }

    [Fact]
    public async Task A_grant_gives_up_after_about_ninety_seconds_and_any_other_error_fails_at_once()
    {
        FakeGcloud(refusals: 100, NotYetUsable);
        var (exitCode, error, calls) = await RunAccountsAsync();
        Assert.NotEqual(0, exitCode);
        Assert.Equal(9, calls.Count(c => c.StartsWith("sleep")));
        Assert.Equal(10, calls.Count(c => c.Contains("add-iam-policy-binding")));
        Assert.Contains("does not exist", error);

        File.Delete(Log);
        FakeGcloud(refusals: 1, "ERROR: (gcloud.projects.add-iam-policy-binding) PERMISSION_DENIED: caller lacks resourcemanager.projects.setIamPolicy");
        (exitCode, error, calls) = await RunAccountsAsync();
        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain(calls, c => c.StartsWith("sleep"));
        Assert.Single(calls, c => c.Contains("add-iam-policy-binding"));
        Assert.Contains("PERMISSION_DENIED", error);
    }
}
