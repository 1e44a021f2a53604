namespace Ferry.Wasm.Wasi;

public sealed unsafe partial class WasiHost
{
    /// <summary>
    /// clock_res_get(id: clockid u32, resolution_out: *u64 ns). Realtime, monotonic, process and thread CPU time
    /// report the host clock's resolution; any other id is Inval.
    /// </summary>
    private int ClockResGet(int id, int resolutionOut)
    {
        var hostClock = HostClock(id);
        if (hostClock < 0) return Fail(Errno.Inval);
        Sys.Timespec ts;
        if (Sys.clock_getres(hostClock, &ts) != 0) return LinuxError();
        var ns = (ulong)(ts.Sec * 1_000_000_000 + ts.Nsec);
        return TryWriteU64(resolutionOut, ns == 0 ? 1 : ns) ? Ok : Fail(Errno.Fault);
    }

    /// <summary>
    /// clock_time_get(id: clockid u32, precision: u64, time_out: *u64 ns). Realtime is the host's wall clock
    /// (ns since the Unix epoch); monotonic is the context's guest clock ((host now − base) + offset, continuous
    /// across snapshot and restore); process/thread CPU time are the host process's and calling thread's.
    /// Allocation-free. The precision argument is a hint and is ignored.
    /// </summary>
    private int ClockTimeGet(int id, long precision, int timeOut)
    {
        long ns;
        if (id == WasiAbi.ClockMonotonic)
        {
            ns = Context.MonotonicNanos;
        }
        else
        {
            var hostClock = HostClock(id);
            if (hostClock < 0) return Fail(Errno.Inval);
            Sys.Timespec ts;
            if (Sys.clock_gettime(hostClock, &ts) != 0) return LinuxError();
            ns = ts.Sec * 1_000_000_000 + ts.Nsec;
        }
        return TryWriteU64(timeOut, (ulong)ns) ? Ok : Fail(Errno.Fault);
    }

    private static int HostClock(int id) => id switch
    {
        WasiAbi.ClockRealtime => Sys.CLOCK_REALTIME,
        WasiAbi.ClockMonotonic => Sys.CLOCK_MONOTONIC,
        WasiAbi.ClockProcessCpu => Sys.CLOCK_PROCESS_CPUTIME_ID,
        WasiAbi.ClockThreadCpu => Sys.CLOCK_THREAD_CPUTIME_ID,
        _ => -1,
    };

    /// <summary>The current time of a WASI clock in ns (for poll_oneoff), or −1 for an unknown id.</summary>
    private long Now(int id)
    {
        if (id == WasiAbi.ClockMonotonic) return Context.MonotonicNanos;
        var hostClock = HostClock(id);
        if (hostClock < 0) return -1;
        Sys.Timespec ts;
        if (Sys.clock_gettime(hostClock, &ts) != 0) return -1;
        return ts.Sec * 1_000_000_000 + ts.Nsec;
    }
}
