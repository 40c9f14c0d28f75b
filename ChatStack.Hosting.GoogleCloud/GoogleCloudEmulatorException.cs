namespace ChatStack.Hosting.GoogleCloud;

/// <summary>
/// The local machine cannot run an emulator as configured. The message names the fix; the AppHost prints it
/// and exits instead of showing a stack trace.
/// </summary>
public sealed class GoogleCloudEmulatorException(string message) : Exception(message);
