using System.Globalization;

namespace Ferry.Workloads.Tests;

[Collection(WorkloadCollection.Name)]
public sealed class WorkloadTests(WorkloadBuild build)
{
    /// <summary>
    /// Every workload at 16M with an op count that keeps a native run well under a second and a node
    /// run under ~2 s, while still running several batches and (for the graph and join programs)
    /// crossing at least one iteration/round boundary.
    /// </summary>
    public static readonly Dictionary<string, string[]> Small = new()
    {
        ["btree"] = ["--mem", "16M", "--ops", "200000"],
        ["hashjoin"] = ["--mem", "16M", "--ops", "1000000"],
        ["bfs"] = ["--mem", "16M", "--ops", "400000"],
        ["pagerank"] = ["--mem", "16M", "--ops", "500000"],
        ["kvstore"] = ["--mem", "16M", "--ops", "200000", "--write-ratio", "0.3"],
        ["xsbench"] = ["--mem", "16M", "--ops", "100000"],
        ["svm"] = ["--mem", "16M", "--ops", "200000"],
        ["blockchain"] = ["--mem", "16M", "--ops", "100000"],
        ["microbench"] = ["--mem", "16M", "--ops", "500000"],
    };

    public static TheoryData<string> Workloads => [.. Small.Keys];

    public static TheoryData<string, string> RuntimesAndWorkloads
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var r in Runner.ComparedWithNative)
                foreach (var w in Small.Keys)
                    data.Add(r.Name, w);
            return data;
        }
    }

    private static string[] With(string workload, params string[] extra) => [.. Small[workload], .. extra];

    private static void AssertOk(RunResult r, string what)
    {
        Assert.True(r.ExitCode == 0, $"{what}: {r}");
        _ = r.Ops; // final line well-formed
    }

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Native_runs_are_deterministic(string workload)
    {
        var a = Runner.Native.Run(build, workload, Small[workload]);
        var b = Runner.Native.Run(build, workload, Small[workload]);
        AssertOk(a, "first run");
        AssertOk(b, "second run");
        Assert.Equal(a.Stdout, b.Stdout);
        Assert.Equal(ulong.Parse(Small[workload][3], CultureInfo.InvariantCulture), a.Ops);
    }

    [Theory]
    [MemberData(nameof(RuntimesAndWorkloads))]
    public void Runtime_output_matches_native(string runtime, string workload)
    {
        var runner = Runner.ComparedWithNative.Single(r => r.Name == runtime);
        var native = Runner.Native.Run(build, workload, Small[workload]);
        var other = runner.Run(build, workload, Small[workload]);
        AssertOk(native, "native");
        AssertOk(other, runtime);
        Assert.Equal(native.Stdout, other.Stdout);
    }

    /// <summary>The checksum must reflect the state: one more operation or another seed changes it.</summary>
    [Theory]
    [MemberData(nameof(Workloads))]
    public void Checksum_depends_on_ops_and_seed(string workload)
    {
        var args = Small[workload];
        var n = ulong.Parse(args[3], CultureInfo.InvariantCulture);
        var baseRun = Runner.Native.Run(build, workload, args);
        var args2 = (string[])args.Clone();
        args2[3] = (n + 1).ToString(CultureInfo.InvariantCulture);
        var oneMore = Runner.Native.Run(build, workload, args2);
        var otherSeed = Runner.Native.Run(build, workload, With(workload, "--seed", "2"));
        AssertOk(baseRun, "base");
        AssertOk(oneMore, "one more op");
        AssertOk(otherSeed, "seed 2");
        Assert.NotEqual(baseRun.Checksum, oneMore.Checksum);
        Assert.NotEqual(baseRun.Checksum, otherSeed.Checksum);
    }

    /// <summary>A --seconds run reports how many operations it did; --ops with that number reproduces it.</summary>
    [Theory]
    [MemberData(nameof(Workloads))]
    public void Seconds_run_is_reproduced_by_ops(string workload)
    {
        string[] timed = ["--mem", "16M", "--seconds", "0.3", "--progress", "0"];
        if (workload == "kvstore")
            timed = [.. timed, "--write-ratio", "0.3"];
        var t = Runner.Native.Run(build, workload, timed);
        AssertOk(t, "--seconds run");
        Assert.True(t.Ops > 0, $"no operations in 0.3 s: {t}");
        var replay = Runner.Native.Run(build, workload,
            [.. timed.Where((_, i) => i != 2 && i != 3), "--ops", t.Ops.ToString(CultureInfo.InvariantCulture)]);
        AssertOk(replay, "--ops replay");
        Assert.Equal(t.Stdout, replay.Stdout);
    }

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Bad_flags_fail_with_a_clear_message(string workload)
    {
        var banana = Runner.Native.Run(build, workload, ["--mem", "banana"]);
        Assert.NotEqual(0, banana.ExitCode);
        Assert.Contains("--mem", banana.Stderr, StringComparison.Ordinal);
        Assert.Contains("banana", banana.Stderr, StringComparison.Ordinal);
        Assert.Equal("", banana.Stdout);

        var unknown = Runner.Native.Run(build, workload, ["--frobnicate", "3"]);
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("unknown option '--frobnicate'", unknown.Stderr, StringComparison.Ordinal);

        var both = Runner.Native.Run(build, workload, ["--ops", "10", "--seconds", "1"]);
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("only one of", both.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Under node's WASI the same errors come out, and the exit status survives the harness.</summary>
    [Fact]
    public void Bad_flags_fail_under_node_wasi_too()
    {
        var r = Runner.NodeWasi.Run(build, "kvstore", ["--mem", "banana"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--mem: cannot read 'banana' as a size", r.Stderr, StringComparison.Ordinal);
        var w = Runner.NodeWasi.Run(build, "kvstore", ["--write-ratio", "1.5"]);
        Assert.Equal(2, w.ExitCode);
        Assert.Contains("--write-ratio must be between 0 and 1", w.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Mem_accepts_suffixes_and_decimals()
    {
        // 1.5M and 1536K are the same size, so the runs are identical; 1536K vs 2M is not.
        var a = Runner.Native.Run(build, "microbench", ["--mem", "1.5M", "--ops", "1000"]);
        var b = Runner.Native.Run(build, "microbench", ["--mem", "1536K", "--ops", "1000"]);
        var c = Runner.Native.Run(build, "microbench", ["--mem", "2M", "--ops", "1000"]);
        AssertOk(a, "1.5M");
        AssertOk(b, "1536K");
        AssertOk(c, "2M");
        Assert.Equal(a.Checksum, b.Checksum);
        Assert.NotEqual(a.Checksum, c.Checksum);
        Assert.Contains("384 pages", a.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Btree_invariants_hold_after_the_pool_fills()
    {
        // 3M operations at 16M exhaust the spare nodes, so inserts split nodes and then degrade to updates.
        var r = Runner.Native.Run(build, "btree", ["--mem", "16M", "--ops", "3000000", "--verify", "--progress", "0"]);
        AssertOk(r, "btree --verify");
        Assert.Contains("verify ok", r.Stderr, StringComparison.Ordinal);
    }
}
