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

    /// <summary>A freeze requested this soon after the guest (re)started may wait for JIT work of that start.</summary>
    private static readonly TimeSpan Settled = TimeSpan.FromMilliseconds(100);

    /// <summary>Gaps between an unfreeze and the next request: uniform in [5, 300] ms, so both sides of <see cref="Settled"/> occur.</summary>
    private const double MinGapMs = 5, MaxGapMs = 300;

    public static void Run(Report report, IReadOnlyList<WorkloadCase> suite, int minFreezes)
    {
        var table = new ResultTable($"Freeze latency (request -> frozen at a safe point), >= {minFreezes} freezes per workload, gaps uniform in [{MinGapMs}, {MaxGapMs}] ms after each unfreeze, seed {Seed}",
            ["workload", "arguments", "freezes", "median ms", "max ms", "<= 10 ms", "settled: n", "settled: max ms", "just resumed: n", "just resumed: max ms", "slowest: guest on CPU ms", "slowest: guest waiting for a core ms", "checksum"]);
        var all = new Samples();
        var settledAll = new Samples();
        var i = 0;
        foreach (var standard in suite)
        {
            // Three times the standard run (~1.5–3 s here) for enough freezes at these gaps; a run that ends before
            // minFreezes freezes is repeated twice as long, so the gaps keep their distribution.
            var compiled = WorkloadRunner.Compile(standard.Path, CompileOptions.Default);
            var w = standard.WithMoreOps(3);
            WorkloadRun reference, frozen;
            var attempt = 0;
            do
            {
                Report.Progress($"freeze latency: {w.CommandLine}");
                reference = WorkloadRunner.Run(compiled, w);
                reference.EnsureExited(w.Name + " (uninterrupted)");
                frozen = WorkloadRunner.Run(compiled, w, Gaps(new Random(Seed + i + (100 * attempt))));
                frozen.EnsureExited(w.Name + " (with freezes)");
                if (frozen.Freezes.Count < minFreezes) w = w.WithMoreOps(2);
                attempt++;
            }
            while (frozen.Freezes.Count < minFreezes && attempt < 4);
            if (frozen.ChecksumLine != reference.ChecksumLine)
            {
                throw new InvalidOperationException($"{w.Name}: '{frozen.ChecksumLine}' after freezes, '{reference.ChecksumLine}' uninterrupted");
            }

            var ms = new Samples();
            var settled = new Samples();
            var soon = new Samples();
            FreezeSample? slowest = null;
            foreach (var f in frozen.Freezes)
            {
                var l = f.Latency.TotalMilliseconds;
                Report.Progress($"  freeze {l:F3} ms, {f.SinceUnfreeze.TotalMilliseconds:F0} ms after the last start/resume; guest on CPU {f.Guest?.OnCpuNs / 1e6:F3} ms, waiting {f.Guest?.WaitingNs / 1e6:F3} ms");
                ms.Add(l);
                all.Add(l);
                if (f.SinceUnfreeze >= Settled)
                {
                    settled.Add(l);
                    settledAll.Add(l);
                }
                else
                {
                    soon.Add(l);
                }
                if (slowest is null || f.Latency > slowest.Latency) slowest = f;
            }
            table.Row(w.Name, string.Join(' ', w.Args), Cell.Num(ms.Count, "F0"), Cell.Num(ms.Median, "F3"), Cell.Num(ms.Max, "F3"), ms.Max <= GoalMs ? "yes" : "NO",
                Cell.Num(settled.Count, "F0"), Cell.Num(settled.Count > 0 ? settled.Max : double.NaN, "F3"),
                Cell.Num(soon.Count, "F0"), Cell.Num(soon.Count > 0 ? soon.Max : double.NaN, "F3"),
                Cell.Num(slowest?.Guest is { } c ? c.OnCpuNs / 1e6 : double.NaN, "F3"), Cell.Num(slowest?.Guest is { } q ? q.WaitingNs / 1e6 : double.NaN, "F3"),
                "same");
            i++;
        }
        table.Note("settled: requested >= 100 ms after the guest last started or resumed; just resumed: < 100 ms after.");
        table.Note($"All {all.Count} freezes: median {all.Median:F3} ms, max {all.Max:F3} ms; the {settledAll.Count} requested >= 100 ms after the");
        table.Note($"guest last started or resumed: max {(settledAll.Count > 0 ? settledAll.Max : double.NaN):F3} ms. Goal: <= {GoalMs} ms each.");
        table.Note("Latency = FrozenGuest.FreezeLatency: from FreezeAsync to the guest thread parked at a safe point (frames");
        table.Note("unwound, output flushed). Right after a resume the guest thread JIT-compiles the resume versions of its frozen");
        table.Note("functions (and their loops' OSR versions) and reaches no safe point meanwhile. guest on CPU / waiting for a core:");
        table.Note("the guest thread's /proc schedstat read just before the request and after the requester saw the freeze (a wider");
        table.Note("window than the latency, so an upper bound); with other jobs on both cores, part of a latency is the guest");
        table.Note("waiting to be scheduled. Every run with freezes printed the same checksum line as the uninterrupted run.");
        report.Add(table);
    }

    /// <summary>Endless pseudo-random gaps, uniform in [MinGapMs, MaxGapMs].</summary>
    private static IEnumerable<TimeSpan> Gaps(Random random)
    {
        while (true) yield return TimeSpan.FromMilliseconds(MinGapMs + ((MaxGapMs - MinGapMs) * random.NextDouble()));
    }
}
