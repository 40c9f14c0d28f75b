namespace ChatStack.Provisioner.Infrastructure;

/// <summary>What a run does, or would do, to one resource.</summary>
public enum ChangeKind
{
    /// <summary>Exists as desired.</summary>
    Unchanged,

    /// <summary>Missing: created.</summary>
    Create,

    /// <summary>Exists with fields that can be changed in place.</summary>
    Update,

    /// <summary>Exists in a shape that cannot be converged without destroying data; left alone and reported.</summary>
    Incompatible,

    /// <summary>Depends on an incompatible resource, so it was not planned or touched.</summary>
    Blocked,
}

/// <summary>One field that differs between what exists and what is desired.</summary>
public sealed record FieldDifference(string Field, string? Current, string? Desired)
{
    public override string ToString() => $"{Field}: {Current ?? "(none)"} -> {Desired ?? "(none)"}";
}

/// <summary>The plan for one resource.</summary>
public sealed record ResourceChange(string Kind, string Name, ChangeKind Action, IReadOnlyList<FieldDifference> Differences)
{
    public static ResourceChange Unchanged(string kind, string name) => new(kind, name, ChangeKind.Unchanged, []);

    public static ResourceChange Create(string kind, string name) => new(kind, name, ChangeKind.Create, []);
}
