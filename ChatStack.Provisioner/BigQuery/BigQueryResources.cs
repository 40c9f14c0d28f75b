using ChatStack.GoogleCloud.BigQuery;
using ChatStack.Provisioner.Infrastructure;

namespace ChatStack.Provisioner.BigQuery;

/// <summary>A BigQuery dataset. Its location is fixed at creation.</summary>
public sealed class DatasetResource(IBigQueryClient client, string datasetId, string location) : IInfrastructureResource
{
    public string Kind => "bigquery.dataset";

    public string Name => datasetId;

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken)
    {
        var existing = await BigQueryLookup.OrNull(() => client.GetDatasetAsync(datasetId, cancellationToken));
        if (existing is null)
        {
            return ResourceChange.Create(Kind, Name);
        }

        // Location names are case-insensitive (US = us); moving a dataset means copying it.
        return string.Equals(existing.Location, location, StringComparison.OrdinalIgnoreCase) || existing.Location is null
            ? ResourceChange.Unchanged(Kind, Name)
            : new ResourceChange(Kind, Name, ChangeKind.Incompatible, [new FieldDifference("location", existing.Location, location)]);
    }

    public Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken) =>
        client.CreateDatasetAsync(new Dataset
        {
            DatasetReference = new DatasetReference { ProjectId = client.ProjectId, DatasetId = datasetId },
            Location = location,
            Description = "ChatStack analytics: chat events and tool invocations.",
        }, cancellationToken);
}

/// <summary>
/// A partitioned, clustered table. New columns are added (as NULLABLE, the only mode BigQuery can add);
/// description and clustering are updated in place; a different partitioning, a changed column type or mode, or a
/// view in its place is incompatible: converging would mean recreating the table and losing its rows.
/// </summary>
public sealed class TableResource(IBigQueryClient client, string datasetId, TableSpec spec) : IInfrastructureResource
{
    public string Kind => "bigquery.table";

    public string Name => $"{datasetId}.{spec.TableId}";

    public IReadOnlyList<string> DependsOn => [datasetId];

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken)
    {
        var existing = await BigQueryLookup.OrNull(() => client.GetTableAsync(datasetId, spec.TableId, cancellationToken));
        if (existing is null)
        {
            return ResourceChange.Create(Kind, Name);
        }

        var incompatible = new List<FieldDifference>();
        if (existing.Type is { } type && type != "TABLE")
        {
            incompatible.Add(new FieldDifference("type", type, "TABLE"));
        }

        var partition = $"{existing.TimePartitioning?.Type ?? "(none)"}({existing.TimePartitioning?.Field ?? "_PARTITIONTIME"})";
        var desiredPartition = $"DAY({spec.PartitionField})";
        if (existing.TimePartitioning is null || partition != desiredPartition)
        {
            incompatible.Add(new FieldDifference("timePartitioning", existing.TimePartitioning is null ? null : partition, desiredPartition));
        }

        var existingFields = (existing.Schema?.Fields ?? []).ToDictionary(f => f.Name ?? "", StringComparer.OrdinalIgnoreCase);
        var updates = new List<FieldDifference>();
        foreach (var field in spec.Fields)
        {
            if (!existingFields.TryGetValue(field.Name!, out var current))
            {
                updates.Add(new FieldDifference($"schema.{field.Name}", null, $"{field.Type} NULLABLE"));
            }
            else if (Normalize(current.Type) != Normalize(field.Type) || (current.Mode ?? "NULLABLE") != field.Mode)
            {
                incompatible.Add(new FieldDifference($"schema.{field.Name}", $"{current.Type} {current.Mode ?? "NULLABLE"}", $"{field.Type} {field.Mode}"));
            }
            else if ((current.Description ?? "") != (field.Description ?? ""))
            {
                // A column's description is what an analyst reads about it (content_sha256 changed from a plain to a keyed
                // hash): updated in place like the table's, so a deployed warehouse does not go on describing the old meaning.
                updates.Add(new FieldDifference($"schema.{field.Name}.description", current.Description, field.Description));
            }
        }

        if (incompatible.Count > 0)
        {
            return new ResourceChange(Kind, Name, ChangeKind.Incompatible, incompatible);
        }

        var clustering = string.Join(",", existing.Clustering?.Fields ?? []);
        if (clustering != string.Join(",", spec.Clustering))
        {
            updates.Add(new FieldDifference("clustering", clustering.Length == 0 ? null : clustering, string.Join(",", spec.Clustering)));
        }

        if (existing.Description != spec.Description)
        {
            updates.Add(new FieldDifference("description", existing.Description, spec.Description));
        }

        return updates.Count == 0 ? ResourceChange.Unchanged(Kind, Name) : new ResourceChange(Kind, Name, ChangeKind.Update, updates);
    }

    public async Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken)
    {
        if (change.Action == ChangeKind.Create)
        {
            await client.CreateTableAsync(datasetId, new Table
            {
                TableReference = new TableReference { ProjectId = client.ProjectId, DatasetId = datasetId, TableId = spec.TableId },
                Description = spec.Description,
                Schema = new TableSchema { Fields = [.. spec.Fields] },
                TimePartitioning = new TimePartitioning { Type = "DAY", Field = spec.PartitionField },
                Clustering = new Clustering { Fields = [.. spec.Clustering] },
            }, cancellationToken);
            return;
        }

        // A schema patch replaces the whole schema: keep every existing column (with the declared description, if it
        // declares the column), then append the new ones as NULLABLE.
        var existing = await client.GetTableAsync(datasetId, spec.TableId, cancellationToken);
        var declared = spec.Fields.ToDictionary(f => f.Name!, StringComparer.OrdinalIgnoreCase);
        var fields = existing.Schema?.Fields?.ToList() ?? [];
        foreach (var field in fields)
        {
            if (field.Name is { } name && declared.TryGetValue(name, out var declaredField))
            {
                field.Description = declaredField.Description;
            }
        }

        var known = fields.Select(f => f.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        fields.AddRange(spec.Fields.Where(f => !known.Contains(f.Name))
            .Select(f => new TableFieldSchema { Name = f.Name, Type = f.Type, Mode = "NULLABLE", Description = f.Description }));
        await client.PatchTableAsync(datasetId, spec.TableId, new Table
        {
            Description = spec.Description,
            Schema = new TableSchema { Fields = fields },
            Clustering = new Clustering { Fields = [.. spec.Clustering] },
        }, cancellationToken);
    }

    // BigQuery answers legacy type names (INTEGER, FLOAT, BOOLEAN) for columns created with the standard ones.
    private static string? Normalize(string? type) => type?.ToUpperInvariant() switch
    {
        "INTEGER" => "INT64",
        "FLOAT" => "FLOAT64",
        "BOOLEAN" => "BOOL",
        "RECORD" => "STRUCT",
        var other => other,
    };
}

/// <summary>A view: its query is updated in place whenever the declared GoogleSQL changes.</summary>
public sealed class ViewResource(IBigQueryClient client, string datasetId, ViewSpec spec) : IInfrastructureResource
{
    public string Kind => "bigquery.view";

    public string Name => $"{datasetId}.{spec.ViewId}";

    public IReadOnlyList<string> DependsOn => [datasetId, .. spec.Reads.Select(table => $"{datasetId}.{table}")];

    public async Task<ResourceChange> PlanAsync(CancellationToken cancellationToken)
    {
        var existing = await BigQueryLookup.OrNull(() => client.GetTableAsync(datasetId, spec.ViewId, cancellationToken));
        if (existing is null)
        {
            return ResourceChange.Create(Kind, Name);
        }

        if (existing.View is null)
        {
            return new ResourceChange(Kind, Name, ChangeKind.Incompatible, [new FieldDifference("type", existing.Type ?? "TABLE", "VIEW")]);
        }

        var differences = new List<FieldDifference>();
        if (Canonical(existing.View.Query) != Canonical(spec.Query))
        {
            differences.Add(new FieldDifference("view.query", "(differs)", "(declared query)"));
        }

        if (existing.Description != spec.Description)
        {
            differences.Add(new FieldDifference("description", existing.Description, spec.Description));
        }

        return differences.Count == 0 ? ResourceChange.Unchanged(Kind, Name) : new ResourceChange(Kind, Name, ChangeKind.Update, differences);
    }

    public async Task ApplyAsync(ResourceChange change, CancellationToken cancellationToken)
    {
        var view = new ViewDefinition { Query = spec.Query, UseLegacySql = false };
        if (change.Action == ChangeKind.Create)
        {
            await client.CreateTableAsync(datasetId, new Table
            {
                TableReference = new TableReference { ProjectId = client.ProjectId, DatasetId = datasetId, TableId = spec.ViewId },
                Description = spec.Description,
                View = view,
            }, cancellationToken);
            return;
        }

        await client.PatchTableAsync(datasetId, spec.ViewId, new Table { Description = spec.Description, View = view }, cancellationToken);
    }

    // Line endings and trailing blanks are not a change.
    private static string Canonical(string? query) =>
        string.Join('\n', (query ?? "").ReplaceLineEndings("\n").Split('\n').Select(l => l.TrimEnd())).Trim();
}

internal static class BigQueryLookup
{
    public static async Task<T?> OrNull<T>(Func<Task<T>> get) where T : class
    {
        try
        {
            return await get();
        }
        catch (BigQueryException e) when (e.Code == 404)
        {
            return null;
        }
    }
}
