using ChatStack.BigQueryEmulator.Apis;
using ChatStack.BigQueryEmulator.Jobs;
using ChatStack.BigQueryEmulator.Storage;

namespace ChatStack.BigQueryEmulator;

public static class EmulatorApp
{
    /// <summary>Builds the emulator; tests pass extra configuration (e.g. in-memory, --urls http://127.0.0.1:0).</summary>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.AddBigQueryEmulator();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapBigQueryEmulator();
        return app;
    }

    public static IHostApplicationBuilder AddBigQueryEmulator(this IHostApplicationBuilder builder)
    {
        builder.Services.Configure<BigQueryEmulatorOptions>(builder.Configuration.GetSection(BigQueryEmulatorOptions.Section));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<DuckDbDatabase>();
        builder.Services.AddSingleton<Catalog>();
        builder.Services.AddSingleton<TableWriter>();
        builder.Services.AddSingleton<QueryEngine>();
        builder.Services.AddHealthChecks().AddCheck<DuckDbHealthCheck>("duckdb");
        return builder;
    }

    public static WebApplication MapBigQueryEmulator(this WebApplication app)
    {
        app.UseBigQueryErrors();
        app.MapGet("/", () => Results.Text("ChatStack BigQuery emulator (BigQuery v2 REST on DuckDB). See README.md.\n"));
        app.MapHealthChecks("/health");
        app.MapDatasetApis();
        app.MapTableApis();
        app.MapJobApis();
        app.MapFallback((HttpContext context) =>
            throw BigQueryError.NotFound($"Not found: the BigQuery emulator has no {context.Request.Method} {context.Request.Path}"));
        return app;
    }
}
