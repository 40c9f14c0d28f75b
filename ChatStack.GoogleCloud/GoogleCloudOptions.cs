using Microsoft.Extensions.Configuration;

namespace ChatStack.GoogleCloud;

/// <summary>
/// Where the Google Cloud services are. Read from the variables the Google client libraries use
/// (<c>GOOGLE_CLOUD_PROJECT</c>, <c>PUBSUB_EMULATOR_HOST</c>, <c>FIRESTORE_EMULATOR_HOST</c>,
/// <c>BIGQUERY_EMULATOR_HOST</c>) so the AppHost, Cloud Run and a developer's shell all configure it the same way.
/// An emulator host selects that emulator (plain HTTP/2, no credentials); without it the real service is used
/// (TLS and application default credentials).
/// </summary>
public sealed record GoogleCloudOptions
{
    /// <summary>The Google Cloud project id.</summary>
    public string? ProjectId { get; init; }

    /// <summary>host:port of the Pub/Sub emulator, or null for real Pub/Sub.</summary>
    public string? PubSubEmulatorHost { get; init; }

    /// <summary>host:port of the Firestore emulator, or null for real Firestore.</summary>
    public string? FirestoreEmulatorHost { get; init; }

    /// <summary>host:port of the BigQuery emulator, or null for real BigQuery.</summary>
    public string? BigQueryEmulatorHost { get; init; }

    /// <summary>The Firestore database id.</summary>
    public string FirestoreDatabase { get; init; } = "(default)";

    /// <summary>The project id, or an error that says how to set it.</summary>
    public string RequireProjectId() => string.IsNullOrWhiteSpace(ProjectId)
        ? throw new InvalidOperationException(
            "No Google Cloud project id: set GOOGLE_CLOUD_PROJECT (the AppHost sets it for every service).")
        : ProjectId;

    /// <summary>Reads the options from configuration; <c>GoogleCloud:*</c> keys override the environment-style ones.</summary>
    public static GoogleCloudOptions FromConfiguration(IConfiguration configuration)
    {
        string? Read(string key, string variable) =>
            NullIfEmpty(configuration[$"GoogleCloud:{key}"]) ?? NullIfEmpty(configuration[variable]);

        return new GoogleCloudOptions
        {
            ProjectId = Read("ProjectId", "GOOGLE_CLOUD_PROJECT") ?? NullIfEmpty(configuration["GCLOUD_PROJECT"]),
            PubSubEmulatorHost = Read("PubSubEmulatorHost", "PUBSUB_EMULATOR_HOST"),
            FirestoreEmulatorHost = Read("FirestoreEmulatorHost", "FIRESTORE_EMULATOR_HOST"),
            BigQueryEmulatorHost = Read("BigQueryEmulatorHost", "BIGQUERY_EMULATOR_HOST"),
            FirestoreDatabase = Read("FirestoreDatabase", "FIRESTORE_DATABASE") ?? "(default)",
        };
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
