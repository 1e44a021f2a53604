using System.Diagnostics;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;

namespace Ferry.Agent.Tests;

/// <summary>
/// Failures at every phase of a migration leave exactly one running copy, with the state an uninterrupted run
/// would have. Each failure happens at an exact point: the runtimes report their phases to the test hook and
/// wait while the test kills the destination runtime, cuts the migration's connections, or kills and restarts
/// the source agent. The workload is the cheapest of the suite (microbench at 16 MiB, which checksums every
/// page of its memory).
/// </summary>
public sealed class FailureTests(AgentPair pair) : IClassFixture<AgentPair>
{
    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var failure in new[] { "kill-destination", "cut", "restart-source-agent" })
            {
                foreach (var phase in new[] { "setup", "round0", "round1", "state", "commit", "postcopy" }) data.Add(failure, phase);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Exactly_one_copy_runs_on_with_the_uninterrupted_state(string failure, string phase)
    {
        var strategy = phase == "postcopy" ? "postcopy" : "precopy";
        // After commit, "before the acknowledgement" is on the destination: it dies or cuts the streams right
        // after starting the guest, so the source never hears that it did.
        var (side, at) = phase == "commit" && failure != "restart-source-agent" ? ("destination", "running") : ("source", phase);
        var reached = new TaskCompletionSource<HookEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        var restarted = Task.CompletedTask;
        async Task<string> Inject(HookEvent ev)
        {
            if (ev.Side != side || ev.Phase != at || !reached.TrySetResult(ev)) return "continue";
            switch (failure)
            {
                case "kill-destination" when side == "destination":
                    return "exit";
                case "kill-destination":
                    await KillDestinationRuntimeAsync(ev.Migration!);
                    return "continue";
                case "cut":
                    return "cut";
                default:
                    // The agent dies here; the migration goes on at once, while it starts again.
                    pair.A.Kill();
                    restarted = Task.Run(pair.A.StartAgain);
                    return "continue";
            }
        }
        // microbench rewrites all its memory continuously: pre-copy would iterate up to the round limit.
        string[] args = ["--strategy", strategy, "--max-rounds", "2"];
        if (phase == "round1") args = [.. args, "--downtime-target", "0"]; // keep iterating: a second round is certain
        // A restarted source agent costs a second or more on a loaded machine; the program must outlive the
        // migration for "the migration goes on" to be observable, so give that case more time.
        var seconds = failure == "restart-source-agent" ? "8" : "3";
        var (id, m) = await pair.MigrateMidRunAsync("microbench", ["--mem", "16M", "--seconds", seconds, "--progress", "0.2"], args, Inject);
        Assert.True(reached.Task.IsCompleted, $"the migration never reached {side} phase {at}: {m}");
        await restarted;

        // Who should have the workload now.
        var destinationWins = failure == "restart-source-agent" || (failure == "cut" && phase == "commit");
        using (var doc = JsonDocument.Parse(m.Stdout))
        {
            var root = doc.RootElement;
            var succeeded = root.GetProperty("succeeded").GetBoolean();
            if (failure == "restart-source-agent")
            {
                Assert.True(succeeded && m.ExitCode == 0, $"the migration should go on without its source agent: {m}");
            }
            else if (destinationWins)
            {
                // The guest runs on the destination; the source learnt it from the destination agent.
                Assert.False(succeeded);
                Assert.False(root.GetProperty("sourceResumed").GetBoolean());
                Assert.Equal(1, m.ExitCode);
            }
            else
            {
                Assert.False(succeeded, $"the migration should have failed: {m}");
                Assert.True(root.GetProperty("sourceResumed").GetBoolean(), $"the source should resume: {m}");
                Assert.Equal(1, m.ExitCode);
            }
        }
        Assert.True(pair.RunningCopies(id).Count <= 1, $"more than one running copy: {string.Join(", ", pair.RunningCopies(id))}");

        var (winner, loser) = destinationWins ? (pair.B, pair.A) : (pair.A, pair.B);
        var output = await pair.WaitForEndAsync(winner, id);
        var ops = Repo.OpsOf(output);
        Assert.Equal(Repo.NativeReference("microbench", "16M", ops), output);
        var w = await pair.TryGetAsync(winner, id);
        Assert.Equal(WorkloadStates.Exited, w!.State);

        var other = await pair.TryGetAsync(loser, id);
        if (loser == pair.A)
        {
            Assert.Equal(WorkloadStates.MigratedAway, other!.State);
            Assert.DoesNotContain("checksum", await pair.WaitForEndAsync(pair.A, id));
        }
        else
        {
            // The incoming copy never took over: it is gone from the destination's list (kept in its history).
            Assert.True(other is null || other.State is not (WorkloadStates.Running or WorkloadStates.Exited),
                $"the destination still lists {id} as {other?.State}");
        }
        // No runtime of this workload is left anywhere (bounded wait for the loser to finish exiting).
        var sw = Stopwatch.StartNew();
        while (pair.RuntimeProcesses().Any(p => p.Dir.Contains(id, StringComparison.Ordinal)) && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(50);
        Assert.DoesNotContain(pair.RuntimeProcesses(), p => p.Dir.Contains(id, StringComparison.Ordinal));
    }

    private async Task KillDestinationRuntimeAsync(string migrationId)
    {
        using var client = pair.Client(pair.B);
        var info = await client.MigrationAsync(migrationId);
        Assert.True(info.Alive, $"the destination runtime of {migrationId} should be alive");
        using var p = Process.GetProcessById(info.Pid);
        p.Kill();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }
}
