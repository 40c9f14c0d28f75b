using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ChatStack.BigQueryEmulator.Storage;

public sealed class DuckDbHealthCheck(DuckDbDatabase database) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!database.IsOpen)
        {
            return HealthCheckResult.Unhealthy("DuckDB is not open.");
        }
        await database.RunAsync(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            return command.ExecuteScalar();
        }, cancellationToken);
        return HealthCheckResult.Healthy(database.Location);
    }
}
