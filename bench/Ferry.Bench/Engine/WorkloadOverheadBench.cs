using Ferry.Bench.Harness;
using Ferry.Bench.Workloads;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Cost of one compile option on the workload suite: safe points (<see cref="RunSafePoints"/>), or compiled write tracking
/// (<see cref="RunTracking"/>). Each WASI program is compiled <c>builds</c> times (default <see cref="DefaultBuilds"/>) with the option and as
/// often without: a module's speed depends on where the JIT happens to place its code (two builds of
/// identical code differ by up to ~15 % on this machine, measured by this benchmark's spread column), so one build
/// per variant would measure placement luck rather than safe points. Every build is warmed up twice, then all
/// builds run in rotated order, <c>reps</c> rounds; a build's time is its best run (CPU time of the guest run,
/// compilation excluded); a variant's time is the geometric mean over its builds. The checksum line must be
/// identical in every run.
/// </summary>
public static class WorkloadOverheadBench
{
    /// <summary>Independent compilations per variant unless `--builds` says otherwise.</summary>
    public const int DefaultBuilds = 3;

    public static void RunSafePoints(Report report, IReadOnlyList<WorkloadCase> suite, int reps, int builds) =>
        Run(report, suite, reps, builds, "safe points", CompileOptions.Default, CompileOptions.Default with { SafePoints = false },
            "Goal (issue 9 item 7): safe points cost <= 5 %, i.e. on/off <= 1.05.");

    /// <summary>Compiled write tracking (what every agent workload runs with, so that pre-copy can find dirtied pages).</summary>
    public static void RunTracking(Report report, IReadOnlyList<WorkloadCase> suite, int reps, int builds) =>
        Run(report, suite, reps, builds, "write tracking", CompileOptions.Default with { DirtyTracking = true }, CompileOptions.Default,
            "Goal (issue 5 item 7): compiled tracking costs <= 5 % on the suite, i.e. on/off <= 1.05.");

    private static void Run(Report report, IReadOnlyList<WorkloadCase> suite, int reps, int buildsPerVariant, string what, CompileOptions on, CompileOptions off, string goal)
    {
        var table = new ResultTable($"Overhead of {what} on the workload suite (wasm32 WASI, in process): {buildsPerVariant} builds with and {buildsPerVariant} without {what}, {reps} rotated rounds after two warm-up runs each",
            ["workload", "arguments", "on s", "off s", "on/off CPU", "on/off CPU, median build", "on/off CPU, best build", "on/off wall", "on/off, per build pair", "spread of off builds", "load avg"]);
        foreach (var w in suite)
        {
            Report.Progress($"{what}, workload {w.CommandLine}");
            var builds = new List<(bool On, CompiledModule Module, Timings Times)>();
            for (var b = 0; b < buildsPerVariant; b++)
            {
                builds.Add((true, WorkloadRunner.Compile(w.Path, on), new Timings()));
                builds.Add((false, WorkloadRunner.Compile(w.Path, off), new Timings()));
            }
            // With tiered compilation hot functions reach tier 1 (in the background) only after enough calls; a run
            // measured before that would time the JIT rather than the code.
            var expected = Checked(builds[0].Module, w, null, "warm-up").ChecksumLine;
            for (var warm = 0; warm < 2; warm++)
            {
                for (var i = warm == 0 ? 1 : 0; i < builds.Count; i++) Checked(builds[i].Module, w, expected, "warm-up");
            }
            for (var r = 0; r < reps; r++)
            {
                // Rotate which build goes first, so a trend in the load does not favour any of them.
                for (var k = 0; k < builds.Count; k++)
                {
                    var (_, module, times) = builds[(r + k) % builds.Count];
                    Measure(module, w, expected, times);
                }
            }
            var onCpu = GeoMean(builds, true, t => t.Cpu.Min);
            var offCpu = GeoMean(builds, false, t => t.Cpu.Min);
            var onWall = GeoMean(builds, true, t => t.Wall.Min);
            var offWall = GeoMean(builds, false, t => t.Wall.Min);
            var pairs = new List<string>();
            for (var b = 0; b < buildsPerVariant; b++) pairs.Add((builds[2 * b].Times.Cpu.Min / builds[(2 * b) + 1].Times.Cpu.Min).ToString("F2", System.Globalization.CultureInfo.InvariantCulture));
            var offBests = builds.Where(x => !x.On).Select(x => x.Times.Cpu.Min).ToList();
            var onBests = builds.Where(x => x.On).Select(x => x.Times.Cpu.Min).ToList();
            table.Row(w.Name, string.Join(' ', w.Args), Cell.Num(onWall / 1000, "F2"), Cell.Num(offWall / 1000, "F2"),
                Cell.Num(onCpu / offCpu, "F3"), Cell.Num(Median(onBests) / Median(offBests), "F3"), Cell.Num(onBests.Min() / offBests.Min(), "F3"),
                Cell.Num(onWall / offWall, "F3"), string.Join(" ", pairs),
                Cell.Num(offBests.Max() / offBests.Min(), "F3"), Cell.Num(Machine.Load1(), "F2"));
        }
        table.Note($"Every run printed the same `ops N checksum HEX` line with and without {what}. CPU = process CPU time of the run; a build's time is its best run, a variant's the geometric mean over its builds.");
        table.Note("Median build / best build: the median (fastest) of the builds with the option against that of the builds without. Identical builds fall into a fast and a slow group of JIT outcomes; the geometric mean moves with how many slow builds each variant drew, the median and the best do not.");
        table.Note($"Spread of off builds: slowest / fastest of the builds without {what} (identical code, compiled separately) -- how far code placement alone moves one build.");
        table.Note(goal);
        report.Add(table);
    }

    private static double GeoMean(List<(bool On, CompiledModule Module, Timings Times)> builds, bool on, Func<Timings, double> pick)
    {
        double logSum = 0;
        var n = 0;
        foreach (var b in builds)
        {
            if (b.On != on) continue;
            logSum += Math.Log(pick(b.Times));
            n++;
        }
        return Math.Exp(logSum / n);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        var mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static void Measure(CompiledModule compiled, WorkloadCase w, string expected, Timings into)
    {
        var run = Checked(compiled, w, expected, "measured");
        into.Add(run.Wall.TotalMilliseconds, run.CpuMs);
    }

    private static WorkloadRun Checked(CompiledModule compiled, WorkloadCase w, string? expected, string what)
    {
        var run = WorkloadRunner.Run(compiled, w);
        run.EnsureExited($"{w.Name} ({what})");
        if (expected is not null && run.ChecksumLine != expected)
        {
            throw new InvalidOperationException($"{w.Name} ({what}): '{run.ChecksumLine}', expected '{expected}'");
        }
        return run;
    }
}
