using ChatStack.Hosting.GoogleCloud;

try
{
    var builder = DistributedApplication.CreateBuilder(args);
    builder.EnsureAppHostPortsAvailable();
    builder.AddChatStack();
    builder.Build().Run();
    return 0;
}
catch (GoogleCloudEmulatorException e)
{
    // A machine set-up problem: one line that names the fix reads better than a stack trace.
    Console.Error.WriteLine($"ChatStack cannot start: {e.Message}");
    return 1;
}
catch (ChatStackPublishException e)
{
    Console.Error.WriteLine($"ChatStack cannot publish: {e.Message}");
    return 1;
}
