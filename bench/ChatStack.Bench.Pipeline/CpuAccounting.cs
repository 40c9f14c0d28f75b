using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ChatStack.Bench.Pipeline;

/// <summary>
/// CPU time (utime + stime from /proc/&lt;pid&gt;/stat) of each process of this run, grouped by role, and the machine's
/// busy time from /proc/stat, so a benchmark side can be charged with what every process on the cores spent on it.
/// </summary>
internal sealed partial class CpuAccounting
{
    public const string ChatApi = "chat API, everything on";
    public const string ChatApiMemory = "chat API, storage off";
    public const string Bare = "bare endpoint";
    public const string Firestore = "Firestore emulator (JVM)";
    public const string PubSub = "Pub/Sub emulator (JVM)";
    public const string Worker = "analytics worker";
    public const string BigQuery = "BigQuery emulator";
    public const string Bench = "bench process (SSE reader, in-process AppHost)";
    public const string Aspire = "DCP, its monitors, dotnet run launchers";

    /// <summary>The processes that do a turn's work after the chat API has committed it.</summary>
    public static readonly string[] Downstream = [Firestore, PubSub, Worker, BigQuery];

    public static readonly string[] Roles = [ChatApi, ChatApiMemory, Bare, Firestore, PubSub, Worker, BigQuery, Bench, Aspire];

    public static readonly double MsPerTick = 1000.0 / SysConf(2 /* _SC_CLK_TCK */);

    private readonly Dictionary<int, string> _roles;
    private readonly Dictionary<int, long> _last = [];

    private CpuAccounting(Dictionary<int, string> roles) => _roles = roles;

    public IReadOnlyDictionary<int, string> Pids => _roles;

    /// <summary>
    /// This process and its children, and the DCP that the in-process AppHost started: DCP detaches to init but is
    /// told to monitor this process (<c>--monitor &lt;pid&gt;</c>), and runs the emulators and projects under it.
    /// Roles come from command lines and, for the two chat APIs (same executable), from OTEL_SERVICE_NAME.
    /// </summary>
    public static CpuAccounting Discover(string runId)
    {
        var self = Environment.ProcessId;
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && Stat(pid) is { } stat)
            {
                parents[pid] = int.Parse(stat[1], CultureInfo.InvariantCulture);
            }
        }

        var roots = parents.Keys.Where(pid => pid == self || (CommandLine(pid) is [var exe, "start-apiserver", ..] line
            && exe.EndsWith("/dcp", StringComparison.Ordinal) && Monitors(line, self))).ToHashSet();
        var tree = new HashSet<int>(roots);
        for (var grown = true; grown;)
        {
            grown = false;
            foreach (var (pid, parent) in parents)
            {
                grown |= tree.Contains(parent) && tree.Add(pid);
            }
        }

        var roles = tree.Select(pid => (pid, role: Role(pid, self, runId))).Where(p => p.role is not null).ToDictionary(p => p.pid, p => p.role!);
        var missing = new[] { ChatApi, ChatApiMemory, Bare, Firestore, PubSub, BigQuery }.Where(r => !roles.ContainsValue(r)).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException($"no process found for {string.Join(", ", missing)} among {tree.Count} of this run");
        }

        return new CpuAccounting(roles);
    }

    /// <summary>Cumulative CPU ms per role and of the whole machine, now.</summary>
    public Sample Take()
    {
        var byRole = Roles.ToDictionary(r => r, _ => 0.0);
        foreach (var (pid, role) in _roles)
        {
            // A process that has exited keeps its last count, so differences never go negative.
            if (CpuTicks(pid) is { } ticks)
            {
                _last[pid] = ticks;
            }

            byRole[role] += _last.GetValueOrDefault(pid) * MsPerTick;
        }

        // cpu user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
        var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var busy = cpu.Sum() - cpu[3] - cpu[4];
        return new Sample(byRole, busy * MsPerTick, Stopwatch.GetTimestamp());
    }

    /// <summary>
    /// Waits until the stack's own processes (not this one, not DCP) have been quiet for <paramref name="window"/>:
    /// no more CPU in it than <paramref name="quietMs"/> together. Returns false if it ran out of time.
    /// </summary>
    public async Task<bool> SettleAsync(TimeSpan window, double quietMs, TimeSpan limit)
    {
        const int Steps = 3;
        var watched = Roles.Except([Bench, Aspire]).ToArray();
        var history = new Queue<double>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < limit)
        {
            history.Enqueue(watched.Sum(r => Take().Ms[r]));
            if (history.Count > Steps + 1)
            {
                history.Dequeue();
            }

            if (history.Count == Steps + 1 && history.Last() - history.Peek() <= quietMs)
            {
                return true;
            }

            await Task.Delay(window / Steps);
        }

        return false;
    }

    /// <summary>
    /// Sets the nice value of every thread of the processes in <paramref name="roles"/> (threads they start later
    /// inherit it), so that they run on what the others leave: on two shared cores, the nearest this machine comes
    /// to having them elsewhere. Returns how many threads were changed.
    /// </summary>
    public int Renice(IReadOnlyCollection<string> roles, int nice) =>
        // PRIO_PROCESS with a thread id sets that thread alone on Linux.
        ForEachThread(roles, tid => SetPriority(0, tid, nice) == 0);

    /// <summary>
    /// Confines every thread of the processes in <paramref name="roles"/> to the CPUs of <paramref name="cpus"/>
    /// (bit n = CPU n); threads they start later inherit it. Returns how many threads were changed.
    /// </summary>
    public int Pin(IReadOnlyCollection<string> roles, ulong cpus) =>
        ForEachThread(roles, tid => SetAffinity(tid, sizeof(ulong), ref cpus) == 0);

    private int ForEachThread(IReadOnlyCollection<string> roles, Func<int, bool> change)
    {
        var changed = 0;
        foreach (var (pid, role) in _roles.Where(p => roles.Contains(p.Value)))
        {
            foreach (var task in Directory.Exists($"/proc/{pid}/task") ? Directory.EnumerateDirectories($"/proc/{pid}/task") : [])
            {
                if (int.TryParse(Path.GetFileName(task), out var tid) && change(tid))
                {
                    changed++;
                }
            }
        }

        return changed;
    }

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SetAffinity(int tid, nint size, ref ulong mask);

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);

    private static bool Monitors(string[] line, int pid)
    {
        var at = Array.IndexOf(line, "--monitor");
        return at >= 0 && at + 1 < line.Length && line[at + 1] == pid.ToString(CultureInfo.InvariantCulture);
    }

    private static string? Role(int pid, int self, string runId)
    {
        if (pid == self)
        {
            return Bench;
        }

        var line = CommandLine(pid);
        var text = string.Join(' ', line);
        if (line.Length == 0 || line is [_, "run", ..] || line[0].EndsWith("/dcp", StringComparison.Ordinal))
        {
            // dotnet run stays as the parent of every project; DCP monitors each executable.
            return Aspire;
        }

        if (line[0].EndsWith("java", StringComparison.Ordinal))
        {
            return text.Contains("cloud-pubsub-emulator", StringComparison.Ordinal) ? PubSub
                : text.Contains("CloudFirestore", StringComparison.Ordinal) ? Firestore : Aspire;
        }

        if (text.Contains("bare-server", StringComparison.Ordinal))
        {
            return Bare;
        }

        if (text.Contains("ChatStack.AnalyticsWorker", StringComparison.Ordinal))
        {
            return Worker;
        }

        if (text.Contains("ChatStack.BigQueryEmulator", StringComparison.Ordinal))
        {
            return BigQuery;
        }

        if (text.Contains("ChatStack.ChatApi", StringComparison.Ordinal))
        {
            var environment = EnvironmentOf(pid);
            if (environment.GetValueOrDefault(Stack.RunIdVariable) != runId)
            {
                return null;
            }

            return environment.GetValueOrDefault("OTEL_SERVICE_NAME") switch
            {
                Stack.ChatApi => ChatApi,
                Stack.ChatApiMemory => ChatApiMemory,
                _ => null,
            };
        }

        return Aspire;
    }

    /// <summary>utime + stime of a process so far, in clock ticks (<see cref="MsPerTick"/>); null once it has gone.</summary>
    public static long? CpuTicks(int pid) =>
        Stat(pid) is { } stat ? long.Parse(stat[11], CultureInfo.InvariantCulture) + long.Parse(stat[12], CultureInfo.InvariantCulture) : null;

    /// <summary>The fields of /proc/&lt;pid&gt;/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime.</summary>
    private static string[]? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string[] CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static Dictionary<string, string> EnvironmentOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
                .Select(e => e.Split('=', 2)).Where(kv => kv.Length == 2).GroupBy(kv => kv[0]).ToDictionary(g => g.Key, g => g.First()[1]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

    /// <summary>Cumulative CPU ms per role, busy CPU ms of the whole machine, and when.</summary>
    public sealed record Sample(Dictionary<string, double> Ms, double MachineMs, long Timestamp)
    {
        public static Sample operator -(Sample after, Sample before) =>
            new(after.Ms.ToDictionary(kv => kv.Key, kv => kv.Value - before.Ms[kv.Key]), after.MachineMs - before.MachineMs, after.Timestamp - before.Timestamp);

        public static Sample operator +(Sample a, Sample b) =>
            new(a.Ms.ToDictionary(kv => kv.Key, kv => kv.Value + b.Ms[kv.Key]), a.MachineMs + b.MachineMs, a.Timestamp + b.Timestamp);

        public static Sample Zero => new(Roles.ToDictionary(r => r, _ => 0.0), 0, 0);

        public TimeSpan Wall => Stopwatch.GetElapsedTime(0, Timestamp);

        /// <summary>The machine's busy CPU that none of this run's processes took: other sessions, the kernel's threads.</summary>
        public double RestMs => MachineMs - Ms.Values.Sum();
    }
}
