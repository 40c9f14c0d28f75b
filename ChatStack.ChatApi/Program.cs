var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddChatApi();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapChatApi();

app.Run();

/// <summary>The entry point, visible to tests that host the API in process.</summary>
public partial class Program;
