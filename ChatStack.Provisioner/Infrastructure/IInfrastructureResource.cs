namespace ChatStack.Provisioner.Infrastructure;

/// <summary>One piece of desired infrastructure that can compare itself with what exists and converge.</summary>
public interface IInfrastructureResource
{
    /// <summary>For example <c>pubsub.topic</c>.</summary>
    string Kind { get; }

    /// <summary>The short name shown in the plan.</summary>
    string Name { get; }

    /// <summary>Names of resources this one needs as declared (a view needs its tables' columns).</summary>
    IReadOnlyList<string> DependsOn => [];

    /// <summary>Reads what exists and says what converging would do. Changes nothing.</summary>
    Task<ResourceChange> PlanAsync(CancellationToken cancellationToken);

    /// <summary>Carries out a <see cref="ChangeKind.Create"/> or <see cref="ChangeKind.Update"/> plan.</summary>
    Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken);
}
