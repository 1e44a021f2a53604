using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Wasi;

public sealed unsafe partial class WasiHost
{
    private const int MaxPollFds = 64;

    /// <summary>
    /// poll_oneoff(in: *subscription[nsubscriptions], out: *event[nsubscriptions], nsubscriptions: u32,
    /// nevents_out: *u32). Waits until at least one subscription is ready and writes one event per ready one.
    /// subscription (48 bytes): userdata u64 @0, tag u8 @8 (0 clock, 1 fd_read, 2 fd_write), then @16 either
    /// clock {id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40 (1 = absolute)} or
    /// fd_readwrite {fd u32 @16}. event (32 bytes): userdata u64 @0, error u16 @8, type u8 @10,
    /// fd_readwrite {nbytes u64 @16, flags u16 @24 (1 = hangup)}.
    /// Regular files are always ready; stdin, pipes and terminals are polled with poll(2). The wait also watches
    /// the freeze event: if a freeze is requested, no event is written, the guest is told to unwind, and the whole
    /// call runs again after resume (relative timeouts then restart; absolute ones keep their deadline).
    /// </summary>
    private int PollOneoff(int subscriptions, int events, int count, int neventsOut)
    {
        if (count <= 0) return Fail(Errno.Inval);
        var subs = Ptr(subscriptions, (long)(uint)count * WasiAbi.SubscriptionSize);
        var evs = Ptr(events, (long)(uint)count * WasiAbi.EventSize);
        if (subs == null || evs == null || Ptr(neventsOut, 4) == null) return Fail(Errno.Fault);

        // Deadline of the earliest clock subscription, in each clock's own time.
        var waitNs = long.MaxValue;
        var pollCount = 0;
        var set = stackalloc Sys.PollFd[MaxPollFds + 1];
        var slot = stackalloc int[count];
        var deadline = stackalloc long[count];
        var anyReadyNow = false;
        for (var i = 0; i < count; i++)
        {
            var s = subs + i * WasiAbi.SubscriptionSize;
            slot[i] = -1;
            switch (s[8])
            {
                case WasiAbi.EventClock:
                    {
                        deadline[i] = ClockDeadline(s, out var bad);
                        if (bad != Errno.Success)
                        {
                            anyReadyNow = true;
                            break;
                        }
                        waitNs = Math.Min(waitNs, Remaining(s, deadline[i]));
                        break;
                    }
                case WasiAbi.EventFdRead:
                case WasiAbi.EventFdWrite:
                    {
                        var fd = Unsafe.ReadUnaligned<int>(s + 16);
                        var e = Context.Get(fd);
                        if (e is null || (e.Base & Rights.PollFdReadwrite) == 0 || !NeedsPoll(e))
                        {
                            anyReadyNow = true;
                            break;
                        }
                        if (pollCount == MaxPollFds) return Fail(Errno.NoMem);
                        slot[i] = pollCount;
                        set[pollCount++] = new Sys.PollFd { Fd = e.HostFd, Events = s[8] == WasiAbi.EventFdRead ? Sys.POLLIN : Sys.POLLOUT };
                        break;
                    }
                default:
                    anyReadyNow = true;
                    break;
            }
        }

        if (anyReadyNow || waitNs <= 0) waitNs = 0;
        if (waitNs > 0) Context.FlushOutput(); // the guest is about to wait: show what it printed
        while (true)
        {
            var timeoutMs = waitNs == long.MaxValue ? -1 : (int)Math.Min((waitNs + 999_999) / 1_000_000, int.MaxValue);
            var r = Context.PollInterruptible(set, pollCount, timeoutMs, "poll_oneoff");
            if (r == -2) return Ok; // freeze requested: nothing written, the call is re-executed after resume
            if (r < 0) return LinuxError();
            if (r > 0 || waitNs == 0) break;
            // Timed out: poll has ms granularity, so check the clocks really reached their deadlines.
            waitNs = long.MaxValue;
            for (var i = 0; i < count; i++)
            {
                var s = subs + i * WasiAbi.SubscriptionSize;
                if (s[8] == WasiAbi.EventClock) waitNs = Math.Min(waitNs, Remaining(s, deadline[i]));
            }
            if (waitNs <= 0) break;
        }

        var n = 0;
        for (var i = 0; i < count; i++)
        {
            var s = subs + i * WasiAbi.SubscriptionSize;
            var ev = evs + n * WasiAbi.EventSize;
            var userdata = Unsafe.ReadUnaligned<ulong>(s);
            var tag = s[8];
            var error = Errno.Success;
            ulong nbytes = 0;
            ushort flags = 0;
            if (tag == WasiAbi.EventClock)
            {
                if (deadline[i] == long.MinValue) error = Errno.Inval;
                else if (Remaining(s, deadline[i]) > 0) continue;
            }
            else if (tag is WasiAbi.EventFdRead or WasiAbi.EventFdWrite)
            {
                var fd = Unsafe.ReadUnaligned<int>(s + 16);
                var e = Context.Get(fd);
                if (e is null) error = Errno.BadF;
                else if ((e.Base & Rights.PollFdReadwrite) == 0) error = Errno.NotCapable;
                else if (slot[i] >= 0)
                {
                    var revents = set[slot[i]].Revents;
                    if (revents == 0) continue;
                    if ((revents & Sys.POLLHUP) != 0) flags = WasiAbi.EventFdReadwriteHangup;
                    if ((revents & Sys.POLLNVAL) != 0) error = Errno.BadF;
                    nbytes = 1;
                }
                else
                {
                    nbytes = tag == WasiAbi.EventFdRead ? BytesAvailable(e) : 0;
                }
            }
            else
            {
                error = Errno.Inval;
            }
            new Span<byte>(ev, WasiAbi.EventSize).Clear();
            Unsafe.WriteUnaligned(ev, userdata);
            Unsafe.WriteUnaligned(ev + 8, (ushort)error);
            ev[10] = tag;
            Unsafe.WriteUnaligned(ev + 16, nbytes);
            Unsafe.WriteUnaligned(ev + 24, flags);
            n++;
        }
        Unsafe.WriteUnaligned(Ptr(neventsOut, 4), (uint)n);
        return Ok;
    }

    /// <summary>
    /// The deadline of a clock subscription in its clock's time: absolute as given, relative from the start of
    /// this call (a call re-executed after a freeze starts a fresh interval). Inval for an unknown clock.
    /// </summary>
    private long ClockDeadline(byte* s, out Errno error)
    {
        error = Errno.Success;
        var id = Unsafe.ReadUnaligned<int>(s + 16);
        var timeout = Unsafe.ReadUnaligned<ulong>(s + 24);
        var flags = Unsafe.ReadUnaligned<ushort>(s + 40);
        var now = Now(id);
        if (now < 0)
        {
            error = Errno.Inval;
            return long.MinValue;
        }
        if ((flags & WasiAbi.SubscriptionClockAbstime) != 0) return timeout > long.MaxValue ? long.MaxValue : (long)timeout;
        return timeout > (ulong)(long.MaxValue - now) ? long.MaxValue : now + (long)timeout;
    }

    private long Remaining(byte* s, long deadline)
    {
        if (deadline == long.MinValue) return 0;
        if (deadline == long.MaxValue) return long.MaxValue;
        return deadline - Now(Unsafe.ReadUnaligned<int>(s + 16));
    }

    private static bool NeedsPoll(FdEntry e) =>
        e.HostFd >= 0 && e.Type is not FileType.RegularFile and not FileType.Directory;

    private static ulong BytesAvailable(FdEntry e)
    {
        if (e.HostFd < 0 || e.Type != FileType.RegularFile) return 0;
        Sys.Statx st;
        var empty = (byte)0;
        if (Sys.statx(e.HostFd, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) != 0) return 0;
        var pos = Sys.lseek(e.HostFd, 0, Sys.SEEK_CUR);
        return pos < 0 || (ulong)pos > st.Size ? 0 : st.Size - (ulong)pos;
    }
}
