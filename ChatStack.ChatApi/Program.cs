var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddChatStorage();

var app = builder.Build();

app.MapDefaultEndpoints();

app.Run();
