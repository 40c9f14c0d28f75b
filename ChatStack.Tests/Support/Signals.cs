using System.Runtime.InteropServices;

namespace ChatStack.Tests.Support;

/// <summary>POSIX signals, for stopping a process the way Ctrl+C, Cloud Run or the AppHost do.</summary>
public static partial class Signals
{
    public const int Interrupt = 2;
    public const int TerminateSignal = 15;

    /// <summary>SIGTERM.</summary>
    public static void Terminate(int pid) => _ = Kill(pid, TerminateSignal);

    /// <summary>Sends <paramref name="signal"/>, e.g. <see cref="Interrupt"/> (what Ctrl+C sends).</summary>
    public static void Send(int pid, int signal) => _ = Kill(pid, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
