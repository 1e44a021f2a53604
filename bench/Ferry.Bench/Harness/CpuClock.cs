using System.Runtime.InteropServices;

namespace Ferry.Bench.Harness;

/// <summary>
/// CPU time from clock_gettime (nanosecond resolution; /proc-based TotalProcessorTime counts 10 ms ticks). With
/// other jobs on the 2 cores, wall time includes waiting for a core; CPU time does not, so ratios of CPU times are
/// the steadier figure, reported next to wall time.
/// </summary>
public static partial class CpuClock
{
    private const int ProcessCpuTimeId = 2; // CLOCK_PROCESS_CPUTIME_ID
    private const int ThreadCpuTimeId = 3; // CLOCK_THREAD_CPUTIME_ID

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>CPU time of the whole process (all threads: JIT, GC, the guest), in ms.</summary>
    public static double ProcessMs() => Read(ProcessCpuTimeId);

    /// <summary>CPU time of the calling thread, in ms.</summary>
    public static double ThreadMs() => Read(ThreadCpuTimeId);

    private static double Read(int clock)
    {
        if (clock_gettime(clock, out var t) != 0) throw new InvalidOperationException($"clock_gettime({clock}) failed");
        return (t.Seconds * 1e3) + (t.Nanoseconds / 1e6);
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out TimeSpec time);
}
