var app = ChatStack.BigQueryEmulator.EmulatorApp.Create(args);
app.Run();
