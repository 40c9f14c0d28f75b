using ChatStack.BigQueryEmulator.Storage;

var app = ChatStack.BigQueryEmulator.EmulatorApp.Create(args);
try
{
    // Opened before the port is served: a data file held by another emulator stops this one with one clear line.
    app.Services.GetRequiredService<DuckDbDatabase>();
}
catch (DataFileInUseException e)
{
    Console.Error.WriteLine($"ChatStack BigQuery emulator cannot start: {e.Message}");
    return 1;
}

app.Run();
return 0;
