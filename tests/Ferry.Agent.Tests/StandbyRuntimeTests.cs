using System.Diagnostics;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;
using Ferry.Agent.Workloads;

namespace Ferry.Agent.Tests;

/// <summary>
/// The agent's standby runtime (a runtime process started and warmed up before a migration asks for one): an incoming
/// migration runs in it, a new one replaces it, a restarted agent still recognises the adopted runtime, it is stopped
/// while a migration leaves its host, and a migration arrives as well when the standby is gone.
/// </summary>
public sealed class StandbyRuntimeTests(AgentPair pair) : IClassFixture<AgentPair>
{
    private static readonly string[] LongRun = ["--mem", "16M", "--seconds", "120", "--progress", "0.2"];

    [Fact]
    public async Task An_incoming_migration_runs_in_the_standby_which_a_new_one_replaces_and_a_restarted_agent_still_knows()
    {
        var standby = await WaitForStandbyAsync(pair.B, except: null);
        var (id, migrate) = await pair.MigrateMidRunAsync("btree", LongRun, ["--strategy", "precopy", "--max-rounds", "2"]);
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        var there = (await pair.TryGetAsync(pair.B, id))!;
        Assert.Equal(WorkloadStates.Running, there.State);
        Assert.Equal(standby, there.Pid);

        // Replaced once the migration has arrived.
        var next = await WaitForStandbyAsync(pair.B, except: standby);

        // The adopted runtime's command line names the standby directory it started in; a restarted agent must still
        // see it alive (not "lost"), and the killed agent's idle standby must not outlive it.
        pair.B.Restart();
        var after = (await pair.TryGetAsync(pair.B, id))!;
        Assert.Equal(WorkloadStates.Running, after.State);
        Assert.Equal(there.Pid, after.Pid);
        await WaitForExitAsync(next);
        var standbyOfB = await WaitForStandbyAsync(pair.B, except: next);

        // While the workload leaves B, B's standby yields the CPU (stopped), and it continues afterwards.
        var stoppedDuring = false;
        pair.Hook.On(id, async ev =>
        {
            if (ev.Side == "source" && ev.Phase == "accepted") stoppedDuring = await StateBecomesAsync(standbyOfB, 'T');
            return "continue";
        });
        var back = Repo.Ferry("migrate", id, "--from", pair.B.Url, "--to", pair.A.Url, "--strategy", "precopy", "--max-rounds", "2", "--json");
        Assert.True(back.ExitCode == 0, back.ToString());
        Assert.True(stoppedDuring, "the standby was not stopped while a migration left its host");
        Assert.True(await StateBecomesAsync(standbyOfB, 'S'), $"the standby did not continue after the migration (state {State(standbyOfB)})");

        var stop = Repo.Ferry("stop", id, "--on", pair.A.Url);
        Assert.True(stop.ExitCode == 0, stop.ToString());
    }

    [Fact]
    public async Task A_migration_arrives_when_the_standby_is_gone()
    {
        var standby = await WaitForStandbyAsync(pair.B, except: null);
        using (var p = Process.GetProcessById(standby))
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
        // A fixed run time, not a fixed number of operations: 300,000 operations took 0.19 s on an idle machine, so the
        // program could end before the migration (which waits for its first progress line at 0.2 s) froze it.
        var (id, migrate) = await pair.MigrateMidRunAsync("kvstore", ["--mem", "16M", "--seconds", "3", "--progress", "0.2"], ["--strategy", "stopcopy"]);
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.NotEqual(standby, (await pair.TryGetAsync(pair.B, id))!.Pid);
        var output = await pair.WaitForEndAsync(pair.B, id);
        Assert.Equal(Repo.NativeReference("kvstore", "16M", Repo.OpsOf(output)), output);
    }

    /// <summary>The pid of <paramref name="agent"/>'s standby once it accepts adoption (and is not <paramref name="except"/>).</summary>
    private static async Task<int> WaitForStandbyAsync(AgentProcess agent, int? except)
    {
        var root = Path.Combine(agent.StateDir, "standby");
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            foreach (var dir in Directory.Exists(root) ? Directory.EnumerateDirectories(root) : [])
            {
                if (new DirectoryInfo(dir).LinkTarget is not null) continue; // an adopted one's old path
                var pidFile = Path.Combine(dir, StandbyRuntime.PidFileName);
                if (!File.Exists(Path.Combine(dir, StandbyRuntime.AdoptSocketName)) || !File.Exists(pidFile)) continue;
                if (int.TryParse(File.ReadAllText(pidFile), out var pid) && pid != except && Directory.Exists($"/proc/{pid}")) return pid;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"agent {agent.Name} has no standby runtime after 60 s:\n{agent.Log}");
    }

    private static async Task WaitForExitAsync(int pid)
    {
        var sw = Stopwatch.StartNew();
        while (Running(pid) && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(50);
        Assert.False(Running(pid), $"process {pid} is still running");
    }

    /// <summary>Waits (bounded) until the process is in <paramref name="state"/> ('T' stopped, 'S' sleeping; 'R' counts as 'S').</summary>
    private static async Task<bool> StateBecomesAsync(int pid, char state)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            var now = State(pid);
            if (now == state || (state == 'S' && now == 'R')) return true;
            await Task.Delay(20);
        }
        return false;
    }

    /// <summary>The state letter of /proc/PID/stat (after the parenthesised command name), or '?' if it is gone.</summary>
    private static char State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return '?';
        }
    }

    /// <summary>Alive and not a zombie (whose command line is empty).</summary>
    private static bool Running(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Length > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
