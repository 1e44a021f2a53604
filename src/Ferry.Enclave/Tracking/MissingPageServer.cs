using System.Diagnostics;
using Ferry.Wasm.Runtime;
using static Ferry.Enclave.Tracking.Native;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// Post-copy serving by the kernel: a destination memory's committed range is registered with a userfaultfd in
/// missing mode before any of it is touched. A thread that touches a page that has not arrived blocks in the kernel;
/// the server's handler thread reads the fault event, gets the page from the <see cref="IPageSource"/> and maps it with
/// UFFDIO_COPY (UFFDIO_ZEROPAGE for zero pages), which wakes the thread. Pages can also be pushed in the background
/// with <see cref="Install"/>. See Documentation/admin-guide/mm/userfaultfd.rst.
/// </summary>
/// <remarks>
/// <para>Growth: only the pages committed when the server was created are registered. Pages the destination commits
/// later (memory.grow after the switch-over) are fresh zero pages that the source never had; they are not registered,
/// count as present, and never fault.</para>
/// <para>Kernel accesses: with a userfaultfd opened normally (as root, or with vm.unprivileged_userfaultfd = 1), a
/// system call that reads or writes a missing page (e.g. write(2) from Wasm memory) also waits for the page. With
/// UFFD_USER_MODE_ONLY (<see cref="UserfaultfdSupport.UserModeOnly"/>) it fails with EFAULT instead.</para>
/// <para>Garbage collection: a managed thread blocked on a missing page is in cooperative mode; the runtime suspends it
/// for a collection by signalling it (see docs/tracking.md for what was observed). The handler thread calls the
/// source with the fault still pending.</para>
/// </remarks>
public sealed unsafe class MissingPageServer : IDisposable
{
    private const int PageSize = 4096;
    private const int BatchMessages = 16;

    private readonly LinearMemory memory;
    private readonly IPageSource source;
    private readonly Userfaultfd uffd;
    private readonly int wakeFd;
    private readonly nint start;
    private readonly ulong length;
    private readonly PresentPageMap present;
    private readonly Thread handler;
    private readonly CancellationTokenSource shutdown = new();
    private readonly byte* buffer;
    private readonly Lock statsGate = new();
    private long[] latencies = new long[256];
    private int latencyCount;
    private long faults;
    private long installs;
    private long zeroPages;
    private int stopped;
    private int activeInstalls;
    private bool registered;

    /// <summary>
    /// Registers every page <paramref name="destination"/> has committed for missing-page faults and starts the
    /// handler thread. The destination must be fresh: no page of it may have been read or written yet.
    /// </summary>
    /// <exception cref="TrackingUnavailableException">userfaultfd cannot be used here; the message says why.</exception>
    /// <exception cref="InvalidOperationException">Pages of the destination were already touched.</exception>
    public MissingPageServer(LinearMemory destination, IPageSource source)
        : this(destination, source, allowTouched: false)
    {
    }

    /// <summary>
    /// Like the public constructor; with <paramref name="allowTouched"/> pages already populated are accepted: they
    /// never fault, count as missing in <see cref="Present"/> until an install finds them (EEXIST), and must not be
    /// passed to <see cref="MarkEvicted"/> (discard them before registering instead). Used when earlier rounds filled part
    /// of the memory before the final size was known (hybrid migration).
    /// </summary>
    internal MissingPageServer(LinearMemory destination, IPageSource source, bool allowTouched)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(source);
        if (destination.Base == null) throw new ObjectDisposedException(nameof(LinearMemory));
        if (Environment.SystemPageSize != PageSize)
        {
            throw new TrackingUnavailableException($"the system page size is {Environment.SystemPageSize} bytes; post-copy serving needs 4 KiB pages");
        }
        UserfaultfdSupport.Current.EnsureMissingPages();
        memory = destination;
        this.source = source;
        start = (nint)destination.Base;
        length = destination.Size;
        present = PresentPageMap.ForMemory(destination);

        if (!allowTouched && UserfaultfdSupport.Current.PagemapScan)
        {
            var touched = CountPresentPages(start, length);
            if (touched > 0)
            {
                present.Dispose();
                throw new InvalidOperationException(
                    $"{touched} page(s) of the destination memory were already touched; register it for post-copy before anything reads or writes it");
            }
        }

        uffd = Userfaultfd.Create(0);
        wakeFd = eventfd(0, O_CLOEXEC | O_NONBLOCK);
        if (wakeFd < 0)
        {
            var e = Errno;
            uffd.Dispose();
            present.Dispose();
            throw new TrackingException("eventfd", e);
        }
        try
        {
            if (length > 0) uffd.Register(start, length, UFFDIO_REGISTER_MODE_MISSING);
            registered = length > 0;
        }
        catch
        {
            close(wakeFd);
            uffd.Dispose();
            present.Dispose();
            throw;
        }
        buffer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(PageSize, PageSize);
        handler = new Thread(HandlerLoop) { IsBackground = true, Name = "ferry-uffd-missing" };
        handler.Start();
    }

    /// <summary>Raised on the handler thread when the source throws for a faulted page. The faulting thread keeps
    /// waiting until the page is installed (<see cref="Install"/>) or the server is disposed.</summary>
    public event Action<long, Exception>? SourceFailed;

    /// <summary>Which pages have arrived (usable for <see cref="PresentPageMap.WaitForPage(long, CancellationToken)"/>).</summary>
    public PresentPageMap Present => present;

    /// <summary>Pages registered (the destination's committed pages when the server was created).</summary>
    public long PageCount => present.PageCount;

    public long MissingCount => present.MissingCount;

    public bool IsPresent(long pageIndex) => present.IsPresent(pageIndex);

    /// <summary>Faults resolved by the handler thread (fetched from the source, or already pushed meanwhile).</summary>
    public long FaultCount => Interlocked.Read(ref faults);

    /// <summary>Pages mapped by <see cref="Install"/> or <see cref="InstallZero"/>.</summary>
    public long InstalledCount => Interlocked.Read(ref installs);

    /// <summary>Pages mapped as zero pages (by the handler or <see cref="InstallZero"/>).</summary>
    public long ZeroPageCount => Interlocked.Read(ref zeroPages);

    /// <summary>
    /// Maps page <paramref name="pageIndex"/> with <paramref name="data"/> (4096 bytes) unless it is already present,
    /// waking any thread waiting on it. Returns true if this call mapped it, false if it was already present
    /// (EEXIST from the kernel counts as present). Thread-safe; may race the handler thread.
    /// </summary>
    public bool Install(long pageIndex, ReadOnlySpan<byte> data)
    {
        if (data.Length != PageSize) throw new ArgumentException($"a page is {PageSize} bytes, not {data.Length}", nameof(data));
        CheckPage(pageIndex);
        if (present.IsPresent(pageIndex)) return false;
        EnterInstall();
        var page = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(PageSize, PageSize);
        try
        {
            data.CopyTo(new Span<byte>(page, PageSize));
            var e = uffd.Copy(PageAddress(pageIndex), page, PageSize);
            return Settle(pageIndex, e, "UFFDIO_COPY", countInstall: true);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(page);
            Interlocked.Decrement(ref activeInstalls);
        }
    }

    /// <summary>Maps page <paramref name="pageIndex"/> as a zero page unless present; like <see cref="Install"/>.</summary>
    public bool InstallZero(long pageIndex)
    {
        CheckPage(pageIndex);
        if (present.IsPresent(pageIndex)) return false;
        EnterInstall();
        try
        {
            var e = uffd.ZeroPage(PageAddress(pageIndex), PageSize);
            if (e == 0) Interlocked.Increment(ref zeroPages);
            return Settle(pageIndex, e, "UFFDIO_ZEROPAGE", countInstall: true);
        }
        finally
        {
            Interlocked.Decrement(ref activeInstalls);
        }
    }

    // Installs may run on any thread; Shutdown waits for them before closing the descriptor (whose number could be reused).
    private void EnterInstall()
    {
        Interlocked.Increment(ref activeInstalls);
        if (Volatile.Read(ref stopped) != 0)
        {
            Interlocked.Decrement(ref activeInstalls);
            throw new ObjectDisposedException(nameof(MissingPageServer));
        }
    }

    /// <summary>
    /// Makes sure the pages under [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>) of
    /// the destination are present, waiting for the missing ones, before managed host code touches them. The waiting
    /// happens inside a system call (madvise MADV_POPULATE_READ, Linux 5.14+), where the thread is in preemptive mode,
    /// so a garbage collection can proceed meanwhile; a fault taken directly by managed code cannot always be
    /// suspended for one (see docs/tracking.md). Cheap when the pages are present.
    /// </summary>
    public void EnsurePresent(ulong offset, ulong length)
    {
        if (length == 0) return;
        var first = (long)(offset >> 12);
        var last = (long)((offset + length - 1) >> 12);
        var lastRegistered = Math.Min(last, present.PageCount - 1);
        var p = first;
        while (p <= lastRegistered && present.IsPresent(p)) p++;
        if (p > lastRegistered) return;
        var end = lastRegistered + 1;
        while (true)
        {
            if (madvise(PageAddress(p), (nuint)((end - p) * PageSize), MADV_POPULATE_READ) == 0) return;
            var e = Errno;
            if (e == EINTR || e == EAGAIN) continue;
            // Older kernel, or a user-mode-only userfaultfd (kernel accesses fail): touch from managed code instead.
            for (var q = p; q < end; q++)
            {
                if (!present.IsPresent(q)) _ = Volatile.Read(ref *(byte*)PageAddress(q));
            }
            return;
        }
    }

    /// <summary>
    /// Records that the caller discarded a present page (MADV_DONTNEED, batched with others: see
    /// <c>KernelPostCopy.DiscardRuns</c>) so that its next access faults again (a newer version is on its way). Only
    /// while no thread runs on the destination: an access racing with the discard could see a zero page.
    /// </summary>
    internal void MarkEvicted(long pageIndex)
    {
        CheckPage(pageIndex);
        present.MarkMissing(pageIndex);
    }

    /// <summary>
    /// Per-fault service time: from the handler reading the fault event to the page being mapped (the wake-up of the
    /// faulting thread, one more ioctl, follows). Complete for every fault whose thread has resumed.
    /// </summary>
    public FaultLatency GetFaultLatency()
    {
        long[] copy;
        lock (statsGate) copy = latencies.AsSpan(0, latencyCount).ToArray();
        return FaultLatency.From(copy);
    }

    /// <summary>
    /// Unregisters the memory and stops the handler thread once every page is present; afterwards the memory is
    /// ordinary memory. Throws if pages are still missing (unregistering would turn them into zero pages).
    /// </summary>
    public void Stop()
    {
        if (present.MissingCount > 0)
        {
            throw new InvalidOperationException($"{present.MissingCount} page(s) are still missing; install them before stopping post-copy");
        }
        Shutdown();
    }

    /// <summary>
    /// Stops serving whether or not pages are missing. Threads blocked on missing pages are released and, like any
    /// later access to a missing page, see zero-filled pages: only for abandoning the destination.
    /// </summary>
    public void Dispose()
    {
        Shutdown();
    }

    private void Shutdown()
    {
        if (Interlocked.Exchange(ref stopped, 1) != 0) return;
        shutdown.Cancel();
        ulong one = 1;
        write(wakeFd, &one, 8);
        if (Thread.CurrentThread != handler) handler.Join();
        var spin = new SpinWait();
        while (Volatile.Read(ref activeInstalls) > 0) spin.SpinOnce();
        if (registered && memory.Base != null) uffd.Unregister(start, length);
        registered = false;
        close(wakeFd);
        uffd.Dispose();
        System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        // The present map stays valid for readers of Present (it is small); it is freed by its finalizer.
    }

    private void HandlerLoop()
    {
        var msgs = stackalloc UffdMsg[BatchMessages];
        var fds = stackalloc PollFd[2];
        while (Volatile.Read(ref stopped) == 0)
        {
            fds[0] = new PollFd { Fd = uffd.Fd, Events = POLLIN };
            fds[1] = new PollFd { Fd = wakeFd, Events = POLLIN };
            if (poll(fds, 2, -1) < 0)
            {
                if (Errno == EINTR) continue;
                return;
            }
            if (fds[1].Revents != 0) return;
            if ((fds[0].Revents & (POLLERR | POLLHUP)) != 0) return;
            if ((fds[0].Revents & POLLIN) == 0) continue;

            var n = read(uffd.Fd, msgs, (nuint)(BatchMessages * sizeof(UffdMsg)));
            if (n < 0)
            {
                var e = Errno;
                if (e == EAGAIN || e == EINTR) continue;
                return;
            }
            var count = (int)(n / sizeof(UffdMsg));
            var t0 = Stopwatch.GetTimestamp();
            for (var i = 0; i < count; i++)
            {
                if (msgs[i].Event != UFFD_EVENT_PAGEFAULT) continue;
                Serve(msgs[i].PagefaultAddress, t0);
            }
        }
    }

    private void Serve(ulong address, long t0)
    {
        var pageAddress = (nint)(address & ~(ulong)(PageSize - 1));
        var page = (long)((ulong)(pageAddress - start) >> 12);
        if (present.IsPresent(page))
        {
            // Pushed (or served for another thread) after this thread faulted: the copy woke it already, but a
            // wake is cheap and covers a copy made with DONTWAKE.
            Record(t0);
            uffd.Wake(pageAddress, PageSize);
            return;
        }
        bool hasData;
        try
        {
            hasData = source.ReadPage(page, new Span<byte>(buffer, PageSize), shutdown.Token);
        }
        catch (Exception ex)
        {
            if (shutdown.IsCancellationRequested) return;
            SourceFailed?.Invoke(page, ex);
            return;
        }
        // Map without waking, publish (present map, counters), then wake: a thread that resumes from the fault
        // sees the page present and counted.
        int e;
        if (hasData)
        {
            e = uffd.Copy(pageAddress, buffer, PageSize, wake: false);
        }
        else
        {
            e = uffd.ZeroPage(pageAddress, PageSize, wake: false);
            if (e == 0) Interlocked.Increment(ref zeroPages);
        }
        try
        {
            Settle(page, e, hasData ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", countInstall: false);
        }
        catch (TrackingException ex)
        {
            SourceFailed?.Invoke(page, ex);
            return;
        }
        Record(t0);
        uffd.Wake(pageAddress, PageSize);
    }

    private bool Settle(long page, int errno, string op, bool countInstall)
    {
        switch (errno)
        {
            case 0:
                present.MarkPresent(page);
                if (countInstall) Interlocked.Increment(ref installs);
                return true;
            case EEXIST:
                present.MarkPresent(page);
                return false;
            default:
                throw new TrackingException($"{op} of page {page}", errno);
        }
    }

    private void Record(long t0)
    {
        var ticks = Stopwatch.GetTimestamp() - t0;
        Interlocked.Increment(ref faults);
        lock (statsGate)
        {
            if (latencyCount == latencies.Length) Array.Resize(ref latencies, latencies.Length * 2);
            latencies[latencyCount++] = ticks;
        }
    }

    private void CheckPage(long pageIndex)
    {
        if ((ulong)pageIndex >= (ulong)present.PageCount)
        {
            throw new ArgumentOutOfRangeException(nameof(pageIndex), pageIndex, $"the destination has {present.PageCount} registered pages");
        }
    }

    private nint PageAddress(long pageIndex) => start + (nint)(pageIndex * PageSize);

    private static long CountPresentPages(nint start, ulong length)
    {
        if (length == 0) return 0;
        var pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (pm < 0) return 0;
        try
        {
            var vec = stackalloc PageRegion[64];
            var arg = new PmScanArg
            {
                Size = (ulong)sizeof(PmScanArg),
                Start = (ulong)start,
                End = (ulong)start + length,
                Vec = (ulong)vec,
                VecLen = 64,
                CategoryMask = PAGE_IS_PRESENT,
                ReturnMask = PAGE_IS_PRESENT,
            };
            var n = ioctl(pm, PAGEMAP_SCAN, &arg);
            long pages = 0;
            for (var i = 0; i < n; i++) pages += (long)((vec[i].End - vec[i].Start) >> 12);
            return pages;
        }
        finally
        {
            close(pm);
        }
    }
}

/// <summary>Fault service times of a <see cref="MissingPageServer"/>.</summary>
public readonly record struct FaultLatency(int Count, TimeSpan Min, TimeSpan Median, TimeSpan P99, TimeSpan Max)
{
    internal static FaultLatency From(long[] ticks)
    {
        if (ticks.Length == 0) return default;
        Array.Sort(ticks);
        static TimeSpan T(long t) => TimeSpan.FromTicks(t * TimeSpan.TicksPerSecond / Stopwatch.Frequency);
        var p99 = ticks[Math.Min(ticks.Length - 1, (int)Math.Ceiling(ticks.Length * 0.99) - 1)];
        return new FaultLatency(ticks.Length, T(ticks[0]), T(ticks[ticks.Length / 2]), T(p99), T(ticks[^1]));
    }

    public override string ToString() =>
        Count == 0 ? "no faults" : $"{Count} faults: min {Min.TotalMicroseconds:F1} µs, median {Median.TotalMicroseconds:F1} µs, p99 {P99.TotalMicroseconds:F1} µs, max {Max.TotalMicroseconds:F1} µs";
}
