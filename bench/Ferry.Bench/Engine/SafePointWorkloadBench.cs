using Ferry.Bench.Harness;
using Ferry.Bench.Workloads;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Cost of safe points on the workload suite: each WASI program compiled with and without safe points, one
/// warm-up run each, then interleaved runs; wall time of the guest run (compilation excluded), and the checksum
/// line must be identical in every run.
/// </summary>
public static class SafePointWorkloadBench
{
    public static void Run(Report report, bool quick, int reps)
    {
        var table = new ResultTable($"Safe-point overhead on the workload suite (wasm32 WASI, in process): on vs off, {reps} interleaved pairs after two warm-up runs each",
            ["workload", "arguments", "on best s", "off best s", "on/off (best)", "on median s", "off median s", "on/off (median)", "load avg"]);
        foreach (var w in WorkloadCase.Suite(quick))
        {
            Report.Progress($"safe points, workload {w.CommandLine}");
            var on = WorkloadRunner.Compile(w.Path, CompileOptions.Default);
            var off = WorkloadRunner.Compile(w.Path, CompileOptions.Default with { SafePoints = false });
            // Two warm-up runs each: with tiered compilation, hot functions reach tier 1 (in the background) only
            // after enough calls, and a run measured before that would time the JIT rather than the code.
            var expected = Checked(on, w, null, "warm-up (on)").ChecksumLine;
            Checked(off, w, expected, "warm-up (off)");
            Checked(on, w, expected, "warm-up (on)");
            Checked(off, w, expected, "warm-up (off)");
            var sOn = new Samples();
            var sOff = new Samples();
            for (var r = 0; r < reps; r++)
            {
                if (r % 2 == 0)
                {
                    sOn.Add(Checked(on, w, expected, "on").Wall.TotalSeconds);
                    sOff.Add(Checked(off, w, expected, "off").Wall.TotalSeconds);
                }
                else
                {
                    sOff.Add(Checked(off, w, expected, "off").Wall.TotalSeconds);
                    sOn.Add(Checked(on, w, expected, "on").Wall.TotalSeconds);
                }
            }
            table.Row(w.Name, string.Join(' ', w.Args), Cell.Num(sOn.Min, "F2"), Cell.Num(sOff.Min, "F2"), Cell.Num(sOn.Min / sOff.Min, "F3"),
                Cell.Num(sOn.Median, "F2"), Cell.Num(sOff.Median, "F2"), Cell.Num(sOn.Median / sOff.Median, "F3"), Machine.LoadAverage().Split(' ')[0]);
        }
        table.Note("Every run printed the same `ops N checksum HEX` line with and without safe points.");
        table.Note("Goal (issue 9 item 7): safe points cost <= 5 %, i.e. on/off <= 1.05.");
        report.Add(table);
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
