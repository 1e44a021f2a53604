using Ferry.Bench.Harness;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// `checkpoint`: snapshot write/restore throughput of a 1 GiB instance against raw file I/O, and freeze latency of
/// every suite workload (issue 9 items 1 and 7). Parts: snapshot, freeze; both by default.
/// </summary>
public static class CheckpointBench
{
    private static readonly string[] Parts = ["snapshot", "freeze"];

    public static void Run(string[] args)
    {
        var options = BenchArgs.Parse(args, Parts);
        var report = new Report("checkpoint", options.Json);
        report.Note($"{Machine.Describe()}; load average at start {Machine.LoadAverage()}");
        if (options.Runs("snapshot")) SnapshotBench.Run(report, options.Quick, options.Reps ?? 5);
        if (options.Runs("freeze")) FreezeLatencyBench.Run(report, options.Suite(), options.Reps ?? 12);
        report.Finish();
    }
}
