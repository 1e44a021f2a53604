using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;

namespace Ferry.Agent.Tests;

/// <summary>
/// Every suite workload, migrated mid-run between two real agents on loopback, ends with the checksum of an
/// uninterrupted run. "Mid-run" is certain: the program runs for a fixed time (--seconds), the migration is
/// held (test hook) until it has printed its first progress line, and the source must not have printed a
/// final line. The uninterrupted
/// reference is the native build run with exactly the operation count the migrated run reports (the suite's
/// determinism contract: docs/workloads.md).
/// </summary>
public abstract class MigrationMatrix(AgentPair pair)
{
    public static TheoryData<string> Workloads => new(Repo.Suite);

    protected async Task MigrateMidRun(string workload, string strategy, string tracking = "compiler")
    {
        // A program that rewrites its whole memory faster than it can be copied (microbench) never converges:
        // pre-copy then stops at the round limit; keep that short enough for the program's 3 s.
        var (id, m) = await pair.MigrateMidRunAsync(workload, ["--mem", "16M", "--seconds", "3", "--progress", "0.2"], ["--strategy", strategy, "--tracking", tracking, "--max-rounds", "3"]);
        Assert.True(m.ExitCode == 0, $"migrate failed: {m}\nsource log:\n{Tail(pair, pair.A, id)}\ndestination log:\n{Tail(pair, pair.B, id)}");
        Assert.Contains(pair.Hook.Events, e => e.Workload == id && e.Phase == "accepted");
        using (var doc = JsonDocument.Parse(m.Stdout))
        {
            var root = doc.RootElement;
            Assert.True(root.GetProperty("succeeded").GetBoolean());
            var report = root.GetProperty("report");
            Assert.True(report.GetProperty("downtimeMs").GetDouble() > 0);
            Assert.True(report.GetProperty("totalMs").GetDouble() >= report.GetProperty("downtimeMs").GetDouble());
            Assert.True(report.GetProperty("bytesSent").GetInt64() > 0);
            Assert.True(report.GetProperty("rounds").GetInt32() >= 1);
            Assert.Equal(tracking, report.GetProperty("tracking").GetString(), ignoreCase: true);
        }

        var destination = await pair.WaitForEndAsync(pair.B, id);
        var ops = Repo.OpsOf(destination);
        Assert.Equal(Repo.NativeReference(workload, "16M", ops), destination);

        var source = await pair.WaitForEndAsync(pair.A, id);
        Assert.DoesNotContain("checksum", source);
        var a = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.MigratedAway, a!.State);
        Assert.Equal(pair.B.Url, a.MigratedTo);
        var b = await pair.TryGetAsync(pair.B, id);
        Assert.Equal(WorkloadStates.Exited, b!.State);
        Assert.Equal(0, b.ExitCode);
        Assert.Contains("alpha", b.MigratedFrom, StringComparison.Ordinal);
    }

    internal static string Tail(AgentPair pair, AgentProcess agent, string id)
    {
        var dir = Path.Combine(agent.StateDir, "workloads", id);
        var file = Path.Combine(dir, "stderr.log");
        var text = File.Exists(file) ? File.ReadAllText(file) : "(no workload dir)";
        var lines = text.Split('\n').Where(l => !l.StartsWith("progress ", StringComparison.Ordinal)).ToArray();
        _ = pair;
        return string.Join('\n', lines.TakeLast(30)) + "\nagent:\n" + string.Join('\n', agent.Log.Split('\n').TakeLast(20));
    }
}

public sealed class StopCopyMigrations(AgentPair pair) : MigrationMatrix(pair), IClassFixture<AgentPair>
{
    [Theory]
    [MemberData(nameof(Workloads))]
    public Task Stop_and_copy_mid_run_keeps_the_checksum(string workload) => MigrateMidRun(workload, "stopcopy");
}

public sealed class PreCopyMigrations(AgentPair pair) : MigrationMatrix(pair), IClassFixture<AgentPair>
{
    [Theory]
    [MemberData(nameof(Workloads))]
    public Task Pre_copy_mid_run_keeps_the_checksum(string workload) => MigrateMidRun(workload, "precopy");
}

public sealed class PostCopyMigrations(AgentPair pair) : MigrationMatrix(pair), IClassFixture<AgentPair>
{
    [Theory]
    [MemberData(nameof(Workloads))]
    public Task Post_copy_mid_run_keeps_the_checksum(string workload) => MigrateMidRun(workload, "postcopy");
}

public sealed class HybridMigrations(AgentPair pair) : MigrationMatrix(pair), IClassFixture<AgentPair>
{
    [Theory]
    [MemberData(nameof(Workloads))]
    public Task Hybrid_mid_run_keeps_the_checksum(string workload) => MigrateMidRun(workload, "hybrid");
}

/// <summary>
/// The kernel method: pre-copy reads dirtied pages with userfaultfd write protection and PAGEMAP_SCAN on the
/// source; post-copy serves the destination's missing pages with userfaultfd (UFFDIO_COPY) instead of compiled
/// presence checks. The test machines have both (Linux 6.18); a host without them gets a refusal naming
/// the kernel's reason (PageTrackers). Every suite workload with every strategy that tracks (stop-and-copy tracks nothing).
/// </summary>
public sealed class KernelTrackingMigrations(AgentPair pair) : MigrationMatrix(pair), IClassFixture<AgentPair>
{
    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var w in Repo.Suite)
            {
                foreach (var s in new[] { "precopy", "postcopy", "hybrid" }) data.Add(w, s);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Kernel_tracked_migration_mid_run_keeps_the_checksum(string workload, string strategy) =>
        MigrateMidRun(workload, strategy, "kernel");
}
