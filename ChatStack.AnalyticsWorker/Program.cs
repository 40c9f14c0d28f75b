// A worker with a web host only for /health and /alive, so the AppHost and Cloud Run can probe it.
var builder = WebApplication.CreateSlimBuilder(args);

builder.AddBasicServiceDefaults();
builder.AddChatEventIngestion();

var app = builder.Build();

app.MapDefaultEndpoints();

app.Run();
