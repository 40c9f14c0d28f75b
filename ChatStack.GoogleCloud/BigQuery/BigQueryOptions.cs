namespace ChatStack.GoogleCloud.BigQuery;

public sealed class BigQueryOptions
{
    /// <summary>Project that owns the datasets and runs the jobs (GOOGLE_CLOUD_PROJECT).</summary>
    public string ProjectId { get; set; } = "";

    /// <summary>host:port of a BigQuery emulator (BIGQUERY_EMULATOR_HOST): plain http and no credentials.</summary>
    public string? EmulatorHost { get; set; }

    /// <summary>Attempts for an insertAll or a read that fails transiently; the same insertIds are re-sent.</summary>
    public int MaxAttempts { get; set; } = 4;

    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    public Uri BaseAddress => string.IsNullOrWhiteSpace(EmulatorHost)
        ? new Uri("https://bigquery.googleapis.com/")
        : new Uri(EmulatorHost.Contains("://", StringComparison.Ordinal) ? EmulatorHost.TrimEnd('/') + "/" : $"http://{EmulatorHost}/");

    public bool UsesEmulator => !string.IsNullOrWhiteSpace(EmulatorHost);
}
