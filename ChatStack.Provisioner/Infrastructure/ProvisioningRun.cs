using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ChatStack.Provisioner.Infrastructure;

/// <summary>What a run found and did.</summary>
public sealed record ProvisioningResult(IReadOnlyList<ResourceChange> Changes, bool DryRun)
{
    /// <summary>Process exit codes, documented in the README.</summary>
    public const int Converged = 0, Failed = 1, ChangesPending = 2, IncompatibleFound = 3;

    /// <summary>Stopped by Ctrl+C or SIGTERM: 128 + SIGINT, as shells and System.CommandLine report an interrupted command.</summary>
    public const int Stopped = 130;

    public bool HasIncompatible => Changes.Any(c => c.Action is ChangeKind.Incompatible or ChangeKind.Blocked);

    public bool HasPendingChanges => Changes.Any(c => c.Action is ChangeKind.Create or ChangeKind.Update);

    public int ExitCode => HasIncompatible ? IncompatibleFound : DryRun && HasPendingChanges ? ChangesPending : Converged;
}

/// <summary>
/// Plans each resource against what exists, in dependency order, and (unless a dry run) converges it before
/// planning the next, so a half-built state is finished and a resource that depends on another sees it.
/// Incompatible resources are reported and left alone; the rest still converges.
/// </summary>
public sealed class ProvisioningRun(IReadOnlyList<IInfrastructureResource> resources, TextWriter output, ILogger<ProvisioningRun> logger)
{
    public static readonly ActivitySource ActivitySource = new(ChatStack.Contracts.Telemetry.ChatStackTelemetry.Provisioner);

    public async Task<ProvisioningResult> RunAsync(bool dryRun, CancellationToken cancellationToken)
    {
        using var run = ActivitySource.StartActivity(dryRun ? "provision plan" : "provision");
        run?.SetTag("chatstack.provision.dry_run", dryRun);
        output.WriteLine(dryRun ? "Plan (dry run, nothing is changed):" : "Provisioning:");

        var changes = new List<ResourceChange>(resources.Count);
        var unusable = new HashSet<string>(StringComparer.Ordinal);
        foreach (var resource in resources)
        {
            using var activity = ActivitySource.StartActivity($"provision {resource.Kind}");
            activity?.SetTag("chatstack.provision.resource", resource.Name);
            activity?.SetTag("chatstack.provision.kind", resource.Kind);

            var blockers = resource.DependsOn.Where(unusable.Contains).ToList();
            var change = blockers.Count > 0
                ? new ResourceChange(resource.Kind, resource.Name, ChangeKind.Blocked, [.. blockers.Select(b => new FieldDifference("dependsOn", b, "compatible"))])
                : await resource.PlanAsync(cancellationToken);
            if (change.Action is ChangeKind.Incompatible or ChangeKind.Blocked)
            {
                unusable.Add(resource.Name);
            }

            if (!dryRun && change.Action is ChangeKind.Create or ChangeKind.Update)
            {
                await resource.ApplyAsync(change, cancellationToken);
            }

            var outcome = Outcome(change.Action, dryRun);
            activity?.SetTag("chatstack.provision.outcome", outcome);
            if (change.Action == ChangeKind.Incompatible)
            {
                activity?.SetStatus(ActivityStatusCode.Error, "incompatible");
                logger.LogError("{Kind} {Name} exists in a shape ChatStack cannot converge to without data loss; left unchanged: {Differences}",
                    resource.Kind, resource.Name, string.Join("; ", change.Differences));
            }

            Write(change, outcome);
            changes.Add(change);
        }

        var result = new ProvisioningResult(changes, dryRun);
        output.WriteLine(Summary(result));
        run?.SetTag("chatstack.provision.exit_code", result.ExitCode);
        return result;
    }

    private static string Outcome(ChangeKind action, bool dryRun) => action switch
    {
        ChangeKind.Unchanged => "unchanged",
        ChangeKind.Create => dryRun ? "create" : "created",
        ChangeKind.Update => dryRun ? "update" : "updated",
        ChangeKind.Blocked => "blocked",
        _ => "incompatible",
    };

    private void Write(ResourceChange change, string outcome)
    {
        var symbol = change.Action switch
        {
            ChangeKind.Create => '+',
            ChangeKind.Update => '~',
            ChangeKind.Incompatible => '!',
            ChangeKind.Blocked => '-',
            _ => '=',
        };
        output.WriteLine($"  {symbol} {change.Kind,-22} {change.Name,-40} {outcome}");
        foreach (var difference in change.Differences)
        {
            output.WriteLine($"      {difference}");
        }
    }

    private static string Summary(ProvisioningResult result)
    {
        int Count(ChangeKind kind) => result.Changes.Count(c => c.Action == kind);
        var verb = result.DryRun ? "to " : "";
        var text = $"{verb}create {Count(ChangeKind.Create)}, {verb}update {Count(ChangeKind.Update)}, unchanged {Count(ChangeKind.Unchanged)}, incompatible {Count(ChangeKind.Incompatible)}.";
        if (Count(ChangeKind.Blocked) > 0)
        {
            text += $" Blocked by them: {Count(ChangeKind.Blocked)}.";
        }

        if (result.HasIncompatible)
        {
            text += " Incompatible resources were left untouched: fix or remove them by hand, then run again.";
        }

        return text;
    }
}
