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
            ["kernel", "on best ms", "off best ms", "on/off (best)", "on median ms", "off median ms", "on/off (median)", "load avg"]);
        var on = new KernelInstance(kernelsWasm, CompileOptions.Default);
        var off = new KernelInstance(kernelsWasm, CompileOptions.Default with { SafePoints = false });
        foreach (var k in Kernel.All(quick))
        {
            Report.Progress($"safe points, kernel {k.Call}");
            var (expected, _) = on.Call(k);
            var (offResult, _) = off.Call(k);
            if (offResult != expected) throw new InvalidOperationException($"{k.Call}: {expected} with safe points, {offResult} without");
            var sOn = new Samples();
            var sOff = new Samples();
            for (var r = 0; r < reps; r++)
            {
                // Alternate which variant goes first, so a trend in the load does not favour one of them.
                if (r % 2 == 0)
                {
                    sOn.Add(Checked(on, k, expected));
                    sOff.Add(Checked(off, k, expected));
                }
                else
                {
                    sOff.Add(Checked(off, k, expected));
                    sOn.Add(Checked(on, k, expected));
                }
            }
            table.Row(k.Function, Cell.Num(sOn.Min, "F0"), Cell.Num(sOff.Min, "F0"), Cell.Num(sOn.Min / sOff.Min, "F3"),
                Cell.Num(sOn.Median, "F0"), Cell.Num(sOff.Median, "F0"), Cell.Num(sOn.Median / sOff.Median, "F3"), Machine.LoadAverage().Split(' ')[0]);
        }
        table.Note("Goal (issue 9 item 7): safe points cost <= 5 %, i.e. on/off <= 1.05.");
        report.Add(table);
    }

    private static double Checked(KernelInstance instance, Kernel k, string expected)
    {
        var (result, ms) = instance.Call(k);
        if (result != expected) throw new InvalidOperationException($"{k.Call}: {result}, expected {expected}");
        return ms;
    }
}
