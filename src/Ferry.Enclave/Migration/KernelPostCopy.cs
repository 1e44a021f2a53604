using System.Runtime.CompilerServices;
using Ferry.Enclave.Tracking;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Kernel-based post-copy on the destination: the memory is registered with userfaultfd (missing mode) before
/// any page lands; pages arrive with UFFDIO_COPY; a guest access to a page still on the source blocks in the kernel
/// while the handler thread asks the source for it. Guest code must be compiled fully interruptible, and host code
/// reaches memory through <see cref="LinearMemory.Span"/> (populated from a system call), so a garbage collection
/// is never stuck behind a page fault.
/// </summary>
public sealed class KernelPostCopy : IPageSource, IMissingPageHandler, IDisposable
{
    private readonly MissingPageServer server;
    private readonly LinearMemory memory;
    private readonly TaskCompletionSource complete = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action<long[]> request = _ => { };
    private byte[]? pending;
    private long missing;
    private volatile bool running;

    /// <summary>
    /// Registers <paramref name="memory"/>, untouched so far, for missing-page faults at its present size, before any
    /// page lands: every page written from now on is installed with UFFDIO_COPY, so the server knows which pages are
    /// here and <see cref="BeginPostCopy"/> only discards the ones a newer copy is coming for. Registering costs
    /// milliseconds (the present-page map over the whole reservation, the handler thread); done at setup, that time is
    /// not part of the downtime.
    /// </summary>
    public static KernelPostCopy RegisterEarly(LinearMemory memory) => new(memory, allowTouched: false);

    /// <summary>
    /// Registers <paramref name="memory"/> (at its final size) after earlier rounds wrote some of it as ordinary
    /// memory (the memory grew past an early registration). Those pages stay as they are, except the ones in
    /// <paramref name="pendingBitmap"/>, which are discarded first: a newer copy is on its way and the guest must fault
    /// on them until it lands. <paramref name="discardPending"/> false skips that when nothing was written before.
    /// </summary>
    public static KernelPostCopy RegisterLate(LinearMemory memory, byte[] pendingBitmap, bool discardPending)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(pendingBitmap);
        if (discardPending) DiscardRuns(memory, pendingBitmap);
        return new KernelPostCopy(memory, allowTouched: true);
    }

    private KernelPostCopy(LinearMemory memory, bool allowTouched)
    {
        this.memory = memory;
        server = new MissingPageServer(memory, this, allowTouched);
    }

    /// <summary>
    /// Discards every run of consecutive pending pages. This is on the downtime path, and the pending pages of a
    /// hybrid migration are scattered (tens of thousands of short runs for a key-value store): one madvise per run
    /// costs a system call and a TLB shootdown each (measured here: 50,000 isolated pages in 3.5 s). process_madvise
    /// on this process's own pidfd takes up to 1,024 ranges per call and the kernel batches their TLB flushes (same
    /// pages: 44–125 ms). Linux accepts MADV_DONTNEED there for the calling process since 6.13; older kernels refuse
    /// it (EINVAL) and the discard falls back to one madvise per run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // loops over every pending page inside the downtime: no tier-0 pass, no recompilation mid-loop
    internal static unsafe void DiscardRuns(LinearMemory memory, byte[] pendingBitmap)
    {
        const int Batch = 1024; // UIO_MAXIOV
        var ranges = stackalloc Native.IoVec[Batch];
        var count = 0;
        var pages = Math.Min((long)(memory.Size >> 12), (long)pendingBitmap.Length * 8);
        long p = 0;
        while (p < pages)
        {
            if ((pendingBitmap[p >> 3] & (1 << (int)(p & 7))) == 0)
            {
                p++;
                continue;
            }
            var start = p;
            while (p < pages && (pendingBitmap[p >> 3] & (1 << (int)(p & 7))) != 0) p++;
            ranges[count++] = new Native.IoVec { Base = (nint)(memory.Base + start * 4096), Length = (nuint)((p - start) * 4096) };
            if (count == Batch)
            {
                Discard(ranges, count);
                count = 0;
            }
        }
        if (count > 0) Discard(ranges, count);
    }

    /// <summary>This process's pidfd for process_madvise; -1 once the kernel has refused it (then: plain madvise).</summary>
    private static int selfPidfd = -2;

    private static unsafe void Discard(Native.IoVec* ranges, int count)
    {
        var done = 0;
        var fd = Volatile.Read(ref selfPidfd);
        if (fd == -2)
        {
            fd = (int)Native.syscall(Native.SYS_pidfd_open, Environment.ProcessId, 0, 0, 0, 0);
            if (fd < 0) fd = -1;
            if (Interlocked.CompareExchange(ref selfPidfd, fd, -2) != -2 && fd >= 0)
            {
                Native.close(fd);
                fd = Volatile.Read(ref selfPidfd);
            }
        }
        if (fd >= 0)
        {
            var advised = (long)Native.syscall(Native.SYS_process_madvise, fd, (nint)ranges, count, Native.MADV_DONTNEED, 0);
            if (advised >= 0)
            {
                // A short count means it stopped at a range (an error there): that range and the rest go one by one
                // below, where a real failure gets its errno.
                while (done < count && advised >= (long)ranges[done].Length)
                {
                    advised -= (long)ranges[done].Length;
                    done++;
                }
            }
            else if (Native.Errno is Native.EINVAL or Native.ENOSYS or Native.EPERM)
            {
                Volatile.Write(ref selfPidfd, -1);
            }
        }
        for (var i = done; i < count; i++)
        {
            if (Native.madvise(ranges[i].Base, ranges[i].Length, Native.MADV_DONTNEED) != 0)
            {
                throw new TrackingException($"madvise(MADV_DONTNEED) of {ranges[i].Length >> 12} pages at 0x{ranges[i].Base:x}", Native.Errno);
            }
        }
    }

    public Task Completion => complete.Task;

    public long RegisteredPages => server.PageCount;

    public long Missing => Interlocked.Read(ref missing);

    public FaultLatency FaultLatency => server.GetFaultLatency();

    public long Faults => server.FaultCount;

    /// <summary>Writes an arriving page (or zero page). Before the guest runs, newer rounds overwrite older ones.</summary>
    public unsafe void Write(long page, ReadOnlySpan<byte> data, bool zero)
    {
        if (page >= server.PageCount)
        {
            // Committed after registration (the source grew): ordinary memory.
            var at = new Span<byte>(memory.Base + page * 4096, 4096);
            if (zero) at.Clear();
            else data.CopyTo(at);
            return;
        }
        if (server.IsPresent(page))
        {
            // Once the guest runs, a present page may have been written by it: a second copy must not land.
            if (running) return;
            var at = new Span<byte>(memory.Base + page * 4096, 4096);
            if (zero) at.Clear();
            else data.CopyTo(at);
            return;
        }
        var installed = zero ? server.InstallZero(page) : server.Install(page, data);
        if (installed || running) Arrived(page);
    }

    /// <summary>
    /// The state arrived: pages it lists as pending are still to come. Copies of them from earlier rounds are
    /// discarded (batched, see <see cref="DiscardRuns"/>) so the guest faults on them until the newer copy lands.
    /// Must be called before the guest starts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // loops over every pending page inside the downtime: no tier-0 pass, no recompilation mid-loop
    public void BeginPostCopy(byte[] pendingBitmap, Action<long[]> requester)
    {
        ArgumentNullException.ThrowIfNull(pendingBitmap);
        request = requester;
        pending = pendingBitmap;
        if (BitmapPages.Last(pendingBitmap) is var last && last >= server.PageCount)
        {
            throw new MigrationIntegrityException($"page {last} became part of memory after the destination registered it for post-copy; kernel post-copy cannot cover it");
        }
        var count = BitmapPages.Count(pendingBitmap);
        if (server.MissingCount < server.PageCount)
        {
            // Some pages are here (a hybrid's round, or pages touched before a late registration): the pending ones
            // among them are stale. Pure post-copy skips this pass, which costs ~10 ms at 3 GiB (a test per page).
            byte[]? stale = null;
            foreach (var p in BitmapPages.Of(pendingBitmap))
            {
                if (!server.IsPresent(p)) continue;
                stale ??= new byte[pendingBitmap.Length];
                stale[p >> 3] |= (byte)(1 << (int)(p & 7));
            }
            if (stale is not null)
            {
                DiscardRuns(memory, stale);
                foreach (var p in BitmapPages.Of(stale)) server.MarkEvicted(p);
            }
        }
        missing = count;
        memory.Presence = this;
        running = true;
        if (count == 0) Finish();
    }

    private bool IsPending(long p) => pending is { } b && (p >> 3) < b.Length && (b[p >> 3] & (1 << (int)(p & 7))) != 0;

    private void Arrived(long page)
    {
        if (!running || !IsPending(page)) return;
        if (Interlocked.Decrement(ref missing) == 0) Finish();
    }

    private void Finish()
    {
        memory.Presence = null;
        complete.TrySetResult();
        // Every page that was sent is here. The rest were zero on the source: map them as zero pages (in the
        // background, racing harmlessly with guest faults on them), then the memory becomes ordinary memory.
        _ = Task.Run(() =>
        {
            var left = new List<long>();
            server.Present.GetMissing(left);
            foreach (var p in left) server.InstallZero(p);
            try
            {
                server.Stop();
            }
            catch (InvalidOperationException)
            {
                // A page is still missing (should not happen); keep serving faults rather than unmapping.
            }
        });
    }

    /// <summary>Called on the server's handler thread when the guest touches a page that is not here.</summary>
    public bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken)
    {
        if (!IsPending(pageIndex)) return false; // never sent: all zero on the source
        request([pageIndex]);
        server.Present.WaitForPage(pageIndex, cancellationToken);
        // Installed meanwhile by the arriving batch: the server's own copy will find it present (EEXIST).
        destination.Clear();
        return true;
    }

    public void EnsurePresent(ulong address, ulong length) => server.EnsurePresent(address, length);

    public void Dispose() => server.Dispose();
}
