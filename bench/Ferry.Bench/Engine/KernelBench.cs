using Ferry.Bench.Harness;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Execution speed of the compute kernels: Ferry in this process against node's V8 in a subprocess on the same
/// .wasm, same arguments, same repetitions (one warm-up call, then N timed calls each), results checked equal.
/// </summary>
public static class KernelBench
{
    public static void Run(Report report, string kernelsWasm, bool quick, int reps)
    {
        var table = new ResultTable($"Kernels: Ferry (default options: safe points on, tiered JIT) vs node 20 on kernels.wasm; warm-up + {reps} calls each",
            ["kernel", "call", "Ferry best ms", "Ferry median ms", "node best ms", "node median ms", "Ferry/node wall (best)", "Ferry/node CPU (best)", "Ferry/node CPU (median)", "load avg"]);
        var ferry = new KernelInstance(kernelsWasm, CompileOptions.Default);
        foreach (var k in Kernel.All(quick))
        {
            Report.Progress($"kernel {k.Call}: Ferry");
            var (expected, _, _) = ferry.Call(k); // warm-up: JIT (tier 0, then OSR for the loops)
            var f = new Timings();
            for (var r = 0; r < reps; r++)
            {
                var (result, wall, cpu) = ferry.Call(k);
                if (result != expected) throw new InvalidOperationException($"{k.Call}: Ferry returned {result}, then {expected}");
                f.Add(wall, cpu);
            }
            Report.Progress($"kernel {k.Call}: node");
            var (nodeResult, n) = NodeBaseline.Kernel(kernelsWasm, k.Function, k.Argument, reps);
            if (nodeResult != expected) throw new InvalidOperationException($"{k.Call}: Ferry returned {expected}, node {nodeResult}");
            table.Row(k.Function, k.Call, Cell.Num(f.Wall.Min, "F0"), Cell.Num(f.Wall.Median, "F0"), Cell.Num(n.Wall.Min, "F0"), Cell.Num(n.Wall.Median, "F0"),
                Cell.Num(f.Wall.Min / n.Wall.Min, "F2"), Cell.Num(f.Cpu.Min / n.Cpu.Min, "F2"), Cell.Num(f.Cpu.Median / n.Cpu.Median, "F2"),
                Cell.Num(Machine.Load1(), "F2"));
        }
        table.Note("Both engines returned the same result for every call. CPU = process CPU time of the call (clock_gettime in");
        table.Note("Ferry, process.cpuUsage in node): unlike wall time it excludes waiting for a core while other jobs run.");
        foreach (var k in Kernel.All(quick)) table.Note($"{k.Function}: {k.Kind}");
        report.Add(table);
    }
}
