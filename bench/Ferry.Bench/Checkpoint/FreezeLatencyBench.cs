using Ferry.Bench.Harness;
using Ferry.Bench.Workloads;
using Ferry.Wasm.Compilation;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// Freeze latency of every suite workload (issue 9 item 1: frozen within 10 ms): the program runs in a
/// <see cref="Ferry.Enclave.Runtime.GuestProgram"/> and is frozen at pseudo-random moments (fixed seed), each
/// time measured from the request to the frozen state (<see cref="Ferry.Enclave.Runtime.FrozenGuest.FreezeLatency"/>),
/// then unfrozen. The run must end with the same checksum line as an uninterrupted run.
/// </summary>
public static class FreezeLatencyBench
{
    private const double GoalMs = 10;
    private const int Seed = 20261122;

    public static void Run(Report report, bool quick, int minFreezes)
    {
        var table = new ResultTable($"Freeze latency (request -> frozen at a safe point), >= {minFreezes} freezes per workload at random moments, seed {Seed}",
            ["workload", "arguments", "freezes", "median ms", "p90 ms", "max ms", "<= 10 ms", "uninterrupted s", "with freezes s", "checksum"]);
        var all = new Samples();
        var i = 0;
        foreach (var w in WorkloadCase.Suite(quick))
        {
            Report.Progress($"freeze latency: {w.CommandLine}");
            var compiled = WorkloadRunner.Compile(w.Path, CompileOptions.Default);
            // A warm-up run first, so the uninterrupted time (which sizes the gaps between freezes) is not the JIT's.
            WorkloadRunner.Run(compiled, w).EnsureExited(w.Name + " (warm-up)");
            var reference = WorkloadRunner.Run(compiled, w);
            reference.EnsureExited(w.Name + " (uninterrupted)");
            // Delays average a 1/(minFreezes + 4) of the uninterrupted run, so the run ends after more than
            // minFreezes freezes (each also costs a resume); a short run gets retried with more, shorter gaps.
            WorkloadRun frozen;
            var attempt = 0;
            do
            {
                var mean = reference.Wall / (minFreezes + 4 + (8 * attempt));
                frozen = WorkloadRunner.Run(compiled, w, Delays(new Random(Seed + i + (100 * attempt)), mean));
                frozen.EnsureExited(w.Name + " (with freezes)");
                attempt++;
            }
            while (frozen.FreezeLatencies.Count < minFreezes && attempt < 4);
            var same = frozen.ChecksumLine == reference.ChecksumLine;
            if (!same) throw new InvalidOperationException($"{w.Name}: '{frozen.ChecksumLine}' after freezes, '{reference.ChecksumLine}' uninterrupted");
            var ms = new Samples();
            foreach (var l in frozen.FreezeLatencies)
            {
                ms.Add(l.TotalMilliseconds);
                all.Add(l.TotalMilliseconds);
            }
            table.Row(w.Name, string.Join(' ', w.Args), Cell.Num(ms.Count, "F0"), Cell.Num(ms.Median, "F3"), Cell.Num(Percentile(ms, 0.9), "F3"),
                Cell.Num(ms.Max, "F3"), ms.Max <= GoalMs ? "yes" : "NO", Cell.Num(reference.Wall.TotalSeconds, "F2"),
                Cell.Num(frozen.Wall.TotalSeconds, "F2"), "same");
            i++;
        }
        table.Note($"All {all.Count} freezes: median {all.Median:F3} ms, max {all.Max:F3} ms (goal: <= {GoalMs} ms each). 'with freezes s'");
        table.Note("includes the time spent frozen and resuming (resume versions of the frozen functions are compiled on demand).");
        report.Add(table);
    }

    /// <summary>Endless pseudo-random delays, uniform in [0.2, 1.8] × <paramref name="mean"/>.</summary>
    private static IEnumerable<TimeSpan> Delays(Random random, TimeSpan mean)
    {
        while (true) yield return mean * (0.2 + (1.6 * random.NextDouble()));
    }

    private static double Percentile(Samples s, double q)
    {
        var sorted = new double[s.Count];
        for (var i = 0; i < sorted.Length; i++) sorted[i] = s.Values[i];
        Array.Sort(sorted);
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(q * sorted.Length) - 1)];
    }
}
