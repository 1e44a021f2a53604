using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Ferry.Agent.Workloads;

/// <summary>
/// Starts workload runtime processes and checks on them. A runtime runs in its own session (setsid), with
/// stdin from /dev/null and stdout/stderr appended to the workload's log files, so it neither depends on nor
/// dies with the agent: a restarted agent finds it again by its pid and its workload directory.
/// </summary>
public static class RuntimeProcesses
{
    /// <summary>The agent's state dir (the host's platform key and epoch store live there).</summary>
    public const string StateDirVariable = "FERRY_AGENT_STATE_DIR";
    /// <summary>The fleet trust file confidential runtimes attest against.</summary>
    public const string TrustFileVariable = "FERRY_TRUST_FILE";
    /// <summary>The agent's name (for messages).</summary>
    public const string AgentNameVariable = "FERRY_AGENT_NAME";

    /// <summary>
    /// Starts <c>COMMAND runtime MODE --dir DIR</c> where COMMAND is how to run the ferry CLI (e.g. dotnet and
    /// ferry.dll). Returns the runtime's pid (the shell execs setsid, which execs the runtime: one process).
    /// </summary>
    public static Process Start(IReadOnlyList<string> ferryCommand, string mode, WorkloadDirectory dir, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = dir.Path };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec setsid \"$@\" </dev/null >>\"$FERRY_RUNTIME_STDOUT\" 2>>\"$FERRY_RUNTIME_STDERR\"");
        psi.ArgumentList.Add("ferry-runtime");
        foreach (var part in ferryCommand) psi.ArgumentList.Add(part);
        psi.ArgumentList.Add("runtime");
        psi.ArgumentList.Add(mode);
        psi.ArgumentList.Add("--dir");
        psi.ArgumentList.Add(dir.Path);
        psi.Environment["FERRY_RUNTIME_STDOUT"] = dir.Stdout;
        psi.Environment["FERRY_RUNTIME_STDERR"] = dir.Stderr;
        psi.Environment["DOTNET_gcServer"] = "0";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the runtime process");
    }

    /// <summary>
    /// Is <paramref name="pid"/> a live runtime of <paramref name="dir"/>? (Its command line names the directory, or the
    /// standby directory it was started in, see <see cref="StandbyRuntime"/>; this guards against pid reuse. A zombie
    /// has an empty command line.)
    /// </summary>
    public static bool IsAlive(int pid, WorkloadDirectory dir)
    {
        if (pid <= 0) return false;
        try
        {
            var cmdline = File.ReadAllBytes($"/proc/{pid}/cmdline");
            if (cmdline.Length == 0) return false;
            var args = System.Text.Encoding.UTF8.GetString(cmdline).Split('\0');
            return args.Contains("runtime") && (args.Contains(dir.Path) || args.Contains(dir.RuntimeStartedIn()));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private const int SigKill = 9;
    private const int SigCont = 18;
    private const int SigStop = 19;

    /// <summary>Stops (SIGSTOP) or continues (SIGCONT) a process this agent started and has not reaped.</summary>
    public static void Pause(Process child, bool paused)
    {
        try
        {
            if (!child.HasExited) kill(child.Id, paused ? SigStop : SigCont);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Kills a runtime (SIGKILL) and waits, bounded, until it is gone.</summary>
    public static async Task<bool> KillAsync(int pid, WorkloadDirectory dir, TimeSpan timeout)
    {
        if (!IsAlive(pid, dir)) return true;
        kill(pid, SigKill);
        var sw = Stopwatch.StartNew();
        while (IsAlive(pid, dir))
        {
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(5).ConfigureAwait(false);
        }
        return true;
    }
}
