namespace ChatStack.BigQueryEmulator.Storage;

public sealed class BigQueryEmulatorOptions
{
    public const string Section = "BigQueryEmulator";

    /// <summary>Folder of the DuckDB file; relative paths are under the content root.</summary>
    public string DataPath { get; set; } = ".data/bigquery";

    /// <summary>Keep everything in memory: nothing survives a restart.</summary>
    public bool InMemory { get; set; }

    /// <summary>How long an insertId suppresses a repeat, like BigQuery's best-effort de-duplication.</summary>
    public TimeSpan InsertIdWindow { get; set; } = TimeSpan.FromMinutes(1);
}
