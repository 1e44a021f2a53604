using Ferry.Bench.Harness;

namespace Ferry.Bench.Engine;

/// <summary>
/// `engine`: compile throughput, kernel speed against node, and the cost of safe points (issue 3 item 6, issue 9
/// item 7), and of compiled write tracking (issue 5 item 7). Parts: compile, kernels, safepoints (kernels and workload
/// suite), tracking (workload suite); all by default.
/// </summary>
public static class EngineBench
{
    private static readonly string[] Parts = ["compile", "kernels", "safepoints", "tracking"];

    public static void Run(string[] args)
    {
        var options = BenchArgs.Parse(args, Parts);
        var report = new Report("engine", options.Json);
        report.Note($"{Machine.Describe()}; node {External.NodeVersion() ?? "not installed"}; load average at start {Machine.LoadAverage()}");
        var kernels = BenchModules.Kernels();
        if (options.Runs("compile"))
        {
            var modules = new List<(string, string)> { ("kernels", kernels) };
            modules.AddRange(BenchModules.Workloads());
            modules.AddRange(BenchModules.Programs(out var absent));
            if (absent.Count > 0) report.Note($"not built, skipped (run programs/build): {string.Join(", ", absent)}");
            CompileBench.Run(report, modules, options.Reps ?? 5);
        }
        if (options.Runs("kernels")) KernelBench.Run(report, kernels, options.Quick, options.Reps ?? 5);
        if (options.Runs("safepoints"))
        {
            SafePointKernelBench.Run(report, kernels, options.Quick, options.Reps ?? 5);
            WorkloadOverheadBench.RunSafePoints(report, options.Suite(), options.Reps ?? 3, options.Builds ?? WorkloadOverheadBench.DefaultBuilds);
        }
        if (options.Runs("tracking")) WorkloadOverheadBench.RunTracking(report, options.Suite(), options.Reps ?? 3, options.Builds ?? WorkloadOverheadBench.DefaultBuilds);
        report.Finish();
    }
}
