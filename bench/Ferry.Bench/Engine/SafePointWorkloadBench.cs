using Ferry.Bench.Harness;
using Ferry.Bench.Workloads;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Cost of safe points on the workload suite: each WASI program compiled with and without safe points, two
/// warm-up runs each, then interleaved runs; time of the guest run (compilation excluded), and the checksum line
/// must be identical in every run.
/// </summary>
public static class SafePointWorkloadBench
{
    public static void Run(Report report, bool quick, int reps)
    {
        var table = new ResultTable($"Safe-point overhead on the workload suite (wasm32 WASI, in process): on vs off, {reps} interleaved pairs after two warm-up runs each",
            ["workload", "arguments", "on best s", "off best s", "on/off wall (best)", "on/off CPU (best)", "on/off CPU (median)", "load avg"]);
        foreach (var w in WorkloadCase.Suite(quick))
        {
            Report.Progress($"safe points, workload {w.CommandLine}");
            var on = WorkloadRunner.Compile(w.Path, CompileOptions.Default);
            var off = WorkloadRunner.Compile(w.Path, CompileOptions.Default with { SafePoints = false });
            // With tiered compilation hot functions reach tier 1 (in the background) only after enough calls; a run
            // measured before that would time the JIT rather than the code.
            var expected = Checked(on, w, null, "warm-up (on)").ChecksumLine;
            Checked(off, w, expected, "warm-up (off)");
            Checked(on, w, expected, "warm-up (on)");
            Checked(off, w, expected, "warm-up (off)");
            var sOn = new Timings();
            var sOff = new Timings();
            for (var r = 0; r < reps; r++)
            {
                // Alternate which variant goes first, so a trend in the load does not favour one of them.
                var onFirst = r % 2 == 0;
                Measure(onFirst ? on : off, w, expected, onFirst ? sOn : sOff);
                Measure(onFirst ? off : on, w, expected, onFirst ? sOff : sOn);
            }
            table.Row(w.Name, string.Join(' ', w.Args), Cell.Num(sOn.Wall.Min / 1000, "F2"), Cell.Num(sOff.Wall.Min / 1000, "F2"),
                Cell.Num(sOn.Wall.Min / sOff.Wall.Min, "F3"), Cell.Num(sOn.Cpu.Min / sOff.Cpu.Min, "F3"), Cell.Num(sOn.Cpu.Median / sOff.Cpu.Median, "F3"),
                Cell.Num(Machine.Load1(), "F2"));
        }
        table.Note("Every run printed the same `ops N checksum HEX` line with and without safe points. CPU = process CPU time of the run.");
        table.Note("Goal (issue 9 item 7): safe points cost <= 5 %, i.e. on/off <= 1.05.");
        report.Add(table);
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
