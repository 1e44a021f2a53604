using Ferry.Bench.Harness;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Cost of safe points on the compute kernels: the same module compiled with and without them, both instances
/// warmed up, then calls interleaved (on/off, off/on, ...) so drifting machine load hits both alike.
/// </summary>
public static class SafePointKernelBench
{
    public static void Run(Report report, string kernelsWasm, bool quick, int reps)
    {
        var table = new ResultTable($"Safe-point overhead on kernels: on vs off, {reps} interleaved pairs after a warm-up each",
            ["kernel", "on best ms", "off best ms", "on/off wall (best)", "on/off CPU (best)", "on/off CPU (median)", "load avg"]);
        var on = new KernelInstance(kernelsWasm, CompileOptions.Default);
        var off = new KernelInstance(kernelsWasm, CompileOptions.Default with { SafePoints = false });
        foreach (var k in Kernel.All(quick))
        {
            Report.Progress($"safe points, kernel {k.Call}");
            var (expected, _, _) = on.Call(k);
            var (offResult, _, _) = off.Call(k);
            if (offResult != expected) throw new InvalidOperationException($"{k.Call}: {expected} with safe points, {offResult} without");
            var sOn = new Timings();
            var sOff = new Timings();
            for (var r = 0; r < reps; r++)
            {
                // Alternate which variant goes first, so a trend in the load does not favour one of them.
                var onFirst = r % 2 == 0;
                Measure(onFirst ? on : off, k, expected, onFirst ? sOn : sOff);
                Measure(onFirst ? off : on, k, expected, onFirst ? sOff : sOn);
            }
            table.Row(k.Function, Cell.Num(sOn.Wall.Min, "F0"), Cell.Num(sOff.Wall.Min, "F0"), Cell.Num(sOn.Wall.Min / sOff.Wall.Min, "F3"),
                Cell.Num(sOn.Cpu.Min / sOff.Cpu.Min, "F3"), Cell.Num(sOn.Cpu.Median / sOff.Cpu.Median, "F3"), Cell.Num(Machine.Load1(), "F2"));
        }
        table.Note("Goal (issue 9 item 7): safe points cost <= 5 %, i.e. on/off <= 1.05. CPU = process CPU time of the call.");
        report.Add(table);
    }

    private static void Measure(KernelInstance instance, Kernel k, string expected, Timings into)
    {
        var (result, wall, cpu) = instance.Call(k);
        if (result != expected) throw new InvalidOperationException($"{k.Call}: {result}, expected {expected}");
        into.Add(wall, cpu);
    }
}
