using System.Runtime.InteropServices;

namespace ChatStack.Tests.Support;

/// <summary>POSIX signals, for stopping a process the way Ctrl+C, Cloud Run or the AppHost do.</summary>
public static partial class Signals
{
    /// <summary>SIGTERM.</summary>
    public static void Terminate(int pid) => _ = Kill(pid, 15);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
