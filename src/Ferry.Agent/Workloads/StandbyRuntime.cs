using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Ferry.Agent.Api;

namespace Ferry.Agent.Workloads;

/// <summary>
/// One runtime process the agent starts before any migration asks for it (<c>ferry runtime standby --dir
/// STATE/standby/TOKEN</c>): it has loaded .NET and compiled the migration's code path (<c>MigrationWarmup</c>) by
/// the time an incoming migration arrives. Starting a runtime then is a rename and one message instead of a new
/// process that compiles while the source waits: measured 0.35–0.5 s of a 256 MiB pre-copy's ~2 s total
/// (docs/benchmarks.md).
/// <para>
/// Adoption: the agent writes the incoming workload's spec.json into the standby's directory, records the
/// directory the process was started with (<see cref="WorkloadDirectory.StartedAsFile"/>: its command line names that
/// path, which is how a restarted agent recognises it, see <see cref="RuntimeProcesses.IsAlive"/>), renames the
/// directory to the workload's, leaves a symbolic link at the old path (for whoever reads command lines), and sends the
/// new path over <c>adopt.sock</c>. The process answers <c>ok</c> and continues as that workload's incoming runtime.
/// A standby that is gone or does not answer is killed, and the agent starts a runtime the ordinary way.
/// </para>
/// <para>
/// A standby exits by itself when its agent dies (it checks every half second), so a killed agent leaves no idle
/// process behind; an agent that starts removes what a previous one left in STATE/standby.
/// </para>
/// </summary>
public sealed class StandbyRuntime : IDisposable
{
    /// <summary>The agent's pid, which a standby watches (set in its environment).</summary>
    public const string AgentPidVariable = "FERRY_AGENT_PID";
    /// <summary>In the standby's directory: where it accepts the adoption message.</summary>
    public const string AdoptSocketName = "adopt.sock";
    /// <summary>In the standby's directory: its pid (written by the agent; for the clean-up after an agent restart).</summary>
    public const string PidFileName = "standby.pid";
    /// <summary>The standby's answer to an acceptable adoption.</summary>
    public const string Accepted = "ok";

    /// <summary>How long an adoption waits for a standby that is still starting (a cold start takes ~0.5 s).</summary>
    private static readonly TimeSpan StartWait = TimeSpan.FromSeconds(3);

    private readonly IReadOnlyList<string> ferryCommand;
    private readonly IReadOnlyDictionary<string, string> environment;
    private readonly object gate = new();
    private Process? process;
    private WorkloadDirectory? dir;
    private bool disposed;
    private bool held;

    public StandbyRuntime(string stateDir, IReadOnlyList<string> ferryCommand, IReadOnlyDictionary<string, string> environment)
    {
        Root = Path.Combine(stateDir, "standby");
        this.ferryCommand = ferryCommand;
        this.environment = new Dictionary<string, string>(environment) { [AgentPidVariable] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture) };
        Directory.CreateDirectory(Root);
        RemoveLeftovers();
    }

    /// <summary>STATE/standby: the standby's directory, and links left by adopted ones.</summary>
    public string Root { get; }

    /// <summary>
    /// While migrations are under way on this host (<paramref name="busy"/>), the standby yields the CPU: it is stopped
    /// (SIGSTOP) and no new one starts; afterwards it continues. Starting .NET and compiling the migration path takes
    /// about a second of CPU, which otherwise landed inside the next migration: on this 2-core test machine, whose
    /// two agents share the cores, a kernel post-copy's switch-over took 37 ms instead of 10. Adoption continues it.
    /// </summary>
    public void Hold(bool busy)
    {
        lock (gate)
        {
            if (busy == held) return;
            held = busy;
            if (process is { } p) RuntimeProcesses.Pause(p, busy);
        }
    }

    /// <summary>Starts a standby unless one is alive or migrations are under way. Never throws (a standby is only an optimisation).</summary>
    public void EnsureStarted()
    {
        lock (gate)
        {
            if (disposed || held || (process is { } p && dir is { } d && IsAlive(p, d))) return;
            Discard();
            try
            {
                var path = Path.Combine(Root, RandomNumberGenerator.GetHexString(12, lowercase: true));
                Directory.CreateDirectory(path);
                dir = new WorkloadDirectory(path);
                process = RuntimeProcesses.Start(ferryCommand, "standby", dir, environment);
                File.WriteAllText(Path.Combine(path, PidFileName), process.Id.ToString(CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                Discard();
            }
        }
    }

    /// <summary>
    /// Hands the standby to an incoming workload: <paramref name="target"/> must not exist; on success it is the
    /// standby's renamed directory holding <paramref name="spec"/>, and the returned process is the workload's runtime
    /// (it reports through status.json as a freshly started one does). Null if there is no standby able to take it;
    /// then <paramref name="target"/> does not exist.
    /// </summary>
    public async Task<Process?> TryAdoptAsync(WorkloadDirectory target, WorkloadSpec spec, CancellationToken ct)
    {
        Process? p;
        WorkloadDirectory? from;
        lock (gate)
        {
            p = process;
            from = dir;
            process = null;
            dir = null;
            if (p is not null && held) RuntimeProcesses.Pause(p, false);
        }
        if (p is null || from is null) return null;
        var moved = false;
        try
        {
            // One still starting is worth waiting for: a new process would take as long to start.
            var socketPath = Path.Combine(from.Path, AdoptSocketName);
            var waited = Stopwatch.StartNew();
            while (IsAlive(p, from) && !File.Exists(socketPath) && waited.Elapsed < StartWait) await Task.Delay(10, ct).ConfigureAwait(false);
            if (!IsAlive(p, from) || !File.Exists(socketPath)) throw new IOException("the standby runtime is not up");
            from.WriteSpec(spec);
            File.WriteAllText(Path.Combine(from.Path, WorkloadDirectory.StartedAsFile), from.Path);
            File.Delete(Path.Combine(from.Path, PidFileName));
            Directory.Move(from.Path, target.Path);
            moved = true;
            File.CreateSymbolicLink(from.Path, target.Path);
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 5000, SendTimeout = 5000 };
            socket.Connect(new UnixDomainSocketEndPoint(Path.Combine(target.Path, AdoptSocketName)));
            socket.Send(Encoding.UTF8.GetBytes(target.Path + "\n"));
            var answer = new byte[256];
            var n = socket.Receive(answer);
            var text = Encoding.UTF8.GetString(answer, 0, n).Trim();
            if (text != Accepted) throw new IOException($"the standby runtime refused: {text}");
            return p;
        }
        catch (Exception e) when (e is IOException or SocketException or UnauthorizedAccessException or OperationCanceledException)
        {
            Kill(p);
            TryDelete(from.Path);
            if (moved) TryDelete(target.Path);
            return null;
        }
    }

    /// <summary>Is the standby still running? (Our own child: its pid cannot be reused before we reap it.)</summary>
    private static bool IsAlive(Process p, WorkloadDirectory d)
    {
        try
        {
            return !p.HasExited && Directory.Exists(d.Path);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// After an agent restart: a standby directory is a previous agent's idle standby (killed, removed); a link points
    /// to an adopted runtime's workload directory (kept while that exists, so command lines stay readable).
    /// </summary>
    private void RemoveLeftovers()
    {
        foreach (var path in Directory.EnumerateFileSystemEntries(Root))
        {
            var info = new DirectoryInfo(path);
            if (info.LinkTarget is { } target)
            {
                if (!Directory.Exists(target)) TryDelete(path);
                continue;
            }
            var pidFile = Path.Combine(path, PidFileName);
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile), CultureInfo.InvariantCulture, out var pid))
            {
                var old = new WorkloadDirectory(path);
                if (RuntimeProcesses.IsAlive(pid, old)) RuntimeProcesses.KillAsync(pid, old, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
            }
            TryDelete(path);
        }
    }

    /// <summary>Removes the link an adopted standby left at its old path, if <paramref name="workload"/>'s runtime was one.</summary>
    public static void RemoveLink(WorkloadDirectory workload)
    {
        var startedIn = workload.RuntimeStartedIn();
        if (startedIn != workload.Path && new FileInfo(startedIn).LinkTarget == workload.Path) TryDelete(startedIn);
    }

    private void Discard()
    {
        if (process is { } p) Kill(p);
        if (dir is { } d) TryDelete(d.Path);
        process = null;
        dir = null;
    }

    private static void Kill(Process p)
    {
        try
        {
            p.Kill();
            p.WaitForExit(5000);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }
        p.Dispose();
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (new FileInfo(path).LinkTarget is not null) File.Delete(path);
            else if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            Discard();
        }
    }
}
