using System.Runtime.CompilerServices;
using Ferry.Wasm.Runtime;
using static Ferry.Enclave.Tracking.Native;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// Dirty-page tracking by the kernel: the memory's committed range is registered with a userfaultfd in
/// write-protect mode with <c>UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED</c> and write-protected. A write to a
/// protected page then faults and the kernel itself lifts the protection and lets the write through (no handler
/// thread, one minor fault per page per round). <see cref="Collect"/> uses the <c>PAGEMAP_SCAN</c> ioctl on
/// /proc/self/pagemap to list the pages whose protection was lifted (<c>PAGE_IS_WRITTEN</c>) and to protect them
/// again in the same call (<c>PM_SCAN_WP_MATCHING</c>). See Documentation/admin-guide/mm/userfaultfd.rst
/// ("Write Protect Notifications") and Documentation/admin-guide/mm/pagemap.rst ("PAGEMAP_SCAN").
/// </summary>
/// <remarks>
/// <para>Growth: pages committed by <c>memory.grow</c> after <see cref="Start"/> are registered and protected from the
/// memory's <c>Grown</c> event, which runs on the growing thread before it continues; they are reported when written,
/// like every other page (a fresh page that is only read is not reported). A write that another thread makes to the
/// new pages before the event has protected them is not lost: such pages are found (present and not the shared zero
/// page) and reported by the next <see cref="Collect"/>.</para>
/// <para>Requires Linux 6.7+ and permission to use userfaultfd; the constructor throws
/// <see cref="TrackingUnavailableException"/> with the reason otherwise (see <see cref="UserfaultfdSupport"/>).</para>
/// </remarks>
public sealed unsafe class KernelDirtyTracker : IDirtyPageTracker
{
    private const int PageShift = 12;
    private const int VecLength = 1024;

    private readonly LinearMemory memory;
    private readonly Userfaultfd uffd;
    private readonly int pagemap;
    private readonly PageRegion* vec;
    private readonly Lock gate = new();
    private readonly Action<ulong, ulong> onGrown;
    // Bytes from Base registered with the userfaultfd (0 before the first Start).
    private ulong registered;
    // Pages written during growth before their protection took effect; reported (merged) by the next Collect.
    private readonly List<long> pendingGrowth = [];
    private bool started;
    private bool disposed;

    /// <summary>Prepares kernel tracking of <paramref name="memory"/>; <see cref="Start"/> begins it.</summary>
    /// <exception cref="TrackingUnavailableException">The kernel or permissions do not allow it; the message says why.</exception>
    public KernelDirtyTracker(LinearMemory memory)
        : this(memory, checkSupport: true)
    {
    }

    internal KernelDirtyTracker(LinearMemory memory, bool checkSupport)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory.Base == null) throw new ObjectDisposedException(nameof(LinearMemory));
        if (Environment.SystemPageSize != IDirtyPageTracker.PageSize)
        {
            throw new TrackingUnavailableException($"the system page size is {Environment.SystemPageSize} bytes; kernel tracking needs 4 KiB pages");
        }
        if (checkSupport) UserfaultfdSupport.Current.EnsureDirtyTracking();
        this.memory = memory;
        uffd = Userfaultfd.Create(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED);
        pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (pagemap < 0)
        {
            var e = Errno;
            uffd.Dispose();
            throw new TrackingUnavailableException("cannot open /proc/self/pagemap: " + Describe(e));
        }
        vec = (PageRegion*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)(VecLength * sizeof(PageRegion)));
        onGrown = OnGrown;
    }

    public string Method => "kernel";

    public long PageCount => (long)(memory.Size >> PageShift);

    /// <summary>How the userfaultfd was opened (for diagnostics).</summary>
    public string OpenedVia => uffd.OpenedVia;

    public void Start()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (memory.Base == null) throw new ObjectDisposedException(nameof(LinearMemory));
            var size = memory.Size;
            if (size > registered)
            {
                uffd.Register((nint)memory.Base + (nint)registered, size - registered, UFFDIO_REGISTER_MODE_WP);
                registered = size;
            }
            if (!started)
            {
                memory.Grown += onGrown;
                started = true;
            }
            pendingGrowth.Clear();
            if (registered > 0) uffd.WriteProtect((nint)memory.Base, registered, protect: true);
        }
    }

    public int Collect(List<long> pages) => Collect(pages, rearm: true);

    /// <summary>Without re-protecting what was written: the pages stay writable without faults (see the interface).</summary>
    public int CollectLast(List<long> pages) => Collect(pages, rearm: false);

    private int Collect(List<long> pages, bool rearm)
    {
        ArgumentNullException.ThrowIfNull(pages);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!started) throw new InvalidOperationException("Collect before Start (or after Stop)");
            if (memory.Base == null) throw new ObjectDisposedException(nameof(LinearMemory));
            var first = pages.Count;
            ScanWritten((nint)memory.Base, registered, rearm, pages);
            // Committed but not registered (growth whose registration failed, or racing this call): all count as written.
            var size = memory.Size;
            for (var p = (long)(registered >> PageShift); p < (long)(size >> PageShift); p++) pendingGrowth.Add(p);
            if (pendingGrowth.Count > 0)
            {
                MergeSorted(pages, first, pendingGrowth);
                pendingGrowth.Clear();
            }
            return pages.Count - first;
        }
    }

    public void Stop()
    {
        lock (gate)
        {
            if (!started) return;
            started = false;
            memory.Grown -= onGrown;
            // Unregistering clears the protection, so the memory runs without faults again (userfaultfd.rst).
            if (registered > 0 && memory.Base != null) uffd.Unregister((nint)memory.Base, registered);
            registered = 0;
            pendingGrowth.Clear();
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            Stop();
            disposed = true;
            close(pagemap);
            uffd.Dispose();
            System.Runtime.InteropServices.NativeMemory.Free(vec);
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Runs on the growing thread, after the new pages became accessible and before it continues: register and
    /// protect them. Pages another thread wrote in between are found afterwards: with protection applied, a page
    /// that is present and not the zero page was written before (fresh anonymous pages start unpopulated), and a
    /// page written after the protection faults and is reported by the regular scan anyway.
    /// </summary>
    private void OnGrown(ulong oldBytes, ulong newBytes)
    {
        lock (gate)
        {
            if (!started || disposed || newBytes <= registered) return;
            var start = (nint)memory.Base + (nint)registered;
            var length = newBytes - registered;
            var firstPage = (long)(registered >> PageShift);
            try
            {
                uffd.Register(start, length, UFFDIO_REGISTER_MODE_WP);
            }
            catch (TrackingException)
            {
                // Left unregistered: Collect reports every page beyond `registered` as written (conservative), and
                // the next Start tries again. Never throw into memory.grow.
                return;
            }
            registered = newBytes;
            try
            {
                uffd.WriteProtect(start, length, protect: true);
                ScanPopulated(start, length, pendingGrowth);
            }
            catch (TrackingException)
            {
                // Registered but not (fully) protected: unprotected pages that get written show up as written anyway.
                for (var p = firstPage; p < (long)(newBytes >> PageShift); p++) pendingGrowth.Add(p);
            }
        }
    }

    /// <summary>PAGEMAP_SCAN over [start, start+length): appends written pages (relative to Base); re-protects them if asked.</summary>
    private void ScanWritten(nint start, ulong length, bool rearm, List<long> pages)
    {
        if (length == 0) return;
        var arg = new PmScanArg
        {
            Size = (ulong)sizeof(PmScanArg),
            Flags = rearm ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
            Start = (ulong)start,
            End = (ulong)start + length,
            Vec = (ulong)vec,
            VecLen = VecLength,
            CategoryMask = PAGE_IS_WRITTEN,
            ReturnMask = PAGE_IS_WRITTEN,
        };
        RunScan(ref arg, pages);
    }

    /// <summary>Appends the pages in the range (relative to Base) that are present and not the shared zero page.</summary>
    private void ScanPopulated(nint start, ulong length, List<long> pages)
    {
        const ulong PAGE_IS_PFNZERO = 1UL << 5;
        var arg = new PmScanArg
        {
            Size = (ulong)sizeof(PmScanArg),
            Start = (ulong)start,
            End = (ulong)start + length,
            Vec = (ulong)vec,
            VecLen = VecLength,
            CategoryInverted = PAGE_IS_PFNZERO,
            CategoryMask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
            ReturnMask = PAGE_IS_PRESENT,
        };
        RunScan(ref arg, pages);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a loop over every page, inside a downtime: optimised from its first call (why: PageBitmap, Ferry.Migration)
    private void RunScan(ref PmScanArg arg, List<long> pages)
    {
        var origin = (ulong)memory.Base;
        var end = arg.End;
        while (true)
        {
            int n;
            fixed (PmScanArg* a = &arg) n = ioctl(pagemap, PAGEMAP_SCAN, a);
            if (n < 0)
            {
                var e = Errno;
                if (e == EINTR || e == EAGAIN) continue;
                throw new TrackingException($"PAGEMAP_SCAN of 0x{arg.Start:x}-0x{arg.End:x}", e);
            }
            for (var i = 0; i < n; i++)
            {
                var first = (long)((vec[i].Start - origin) >> PageShift);
                var last = (long)((vec[i].End - origin) >> PageShift);
                for (var p = first; p < last; p++) pages.Add(p);
            }
            // The kernel stops early when the output vector is full; walk_end says where to resume.
            if (arg.WalkEnd >= end || arg.WalkEnd == 0) return;
            arg.Start = arg.WalkEnd;
        }
    }

    /// <summary>Merges the sorted <paramref name="extra"/> into the sorted tail of <paramref name="pages"/> from <paramref name="first"/>, without duplicates.</summary>
    private static void MergeSorted(List<long> pages, int first, List<long> extra)
    {
        var set = new SortedSet<long>(extra);
        for (var i = first; i < pages.Count; i++) set.Add(pages[i]);
        pages.RemoveRange(first, pages.Count - first);
        pages.AddRange(set);
    }

    ~KernelDirtyTracker()
    {
        if (!disposed)
        {
            close(pagemap);
            System.Runtime.InteropServices.NativeMemory.Free(vec);
        }
    }
}
