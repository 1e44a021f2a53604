using System.Text;
using Ferry.Wasm.Runtime;
using static Ferry.Enclave.Tracking.Native;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// What this machine offers for kernel-based tracking, found by trying it: open a userfaultfd, ask the kernel for its
/// features (UFFDIO_API with none requested reports all it supports), probe the PAGEMAP_SCAN ioctl on
/// /proc/self/pagemap, and run the dirty-tracking recipe once on a scratch page. When something is missing the
/// <c>...Reason</c> properties say what and why, for the "falling back to compiler tracking" message.
/// </summary>
public sealed unsafe class UserfaultfdSupport
{
    private static readonly Lazy<UserfaultfdSupport> current = new(Probe);

    private UserfaultfdSupport() { }

    /// <summary>The probe result for this process (probed once, on first use).</summary>
    public static UserfaultfdSupport Current => current.Value;

    /// <summary>A userfaultfd could be opened and its API handshake done.</summary>
    public bool Available { get; private init; }
    /// <summary>How the descriptor was obtained ("userfaultfd(2)", "... with UFFD_USER_MODE_ONLY", "/dev/userfaultfd"), or empty.</summary>
    public string OpenedVia { get; private init; } = "";
    /// <summary>The UFFD_FEATURE_* bits the kernel supports (0 when unavailable).</summary>
    public ulong Features { get; private init; }
    /// <summary>Only user-mode faults are handled (UFFD_USER_MODE_ONLY): kernel accesses to a missing page fail with EFAULT.</summary>
    public bool UserModeOnly => OpenedVia.Contains("USER_MODE_ONLY", StringComparison.Ordinal);
    /// <summary>UFFD_FEATURE_WP_ASYNC: writes to protected pages are resolved by the kernel without a handler (Linux 6.7+).</summary>
    public bool WriteProtectAsync => (Features & UFFD_FEATURE_WP_ASYNC) != 0;
    /// <summary>UFFD_FEATURE_WP_UNPOPULATED: write protection also covers pages never touched yet (Linux 6.4+).</summary>
    public bool WriteProtectUnpopulated => (Features & UFFD_FEATURE_WP_UNPOPULATED) != 0;
    /// <summary>Missing-page faults on anonymous memory can be handled (UFFDIO_REGISTER_MODE_MISSING, UFFDIO_COPY).</summary>
    public bool Missing { get; private init; }
    /// <summary>The PAGEMAP_SCAN ioctl on /proc/self/pagemap exists (Linux 6.7+).</summary>
    public bool PagemapScan { get; private init; }
    /// <summary>The whole dirty-tracking recipe worked on a scratch page: exactly the written page was reported, then none.</summary>
    public bool DirtyTrackingVerified { get; private init; }

    /// <summary><see cref="KernelDirtyTracker"/> can be used.</summary>
    public bool CanTrackDirtyPages => DirtyTrackingUnavailableReason is null;
    /// <summary><see cref="MissingPageServer"/> can be used.</summary>
    public bool CanServeMissingPages => MissingPagesUnavailableReason is null;

    /// <summary>Why <see cref="KernelDirtyTracker"/> cannot be used, or null.</summary>
    public string? DirtyTrackingUnavailableReason { get; private init; }
    /// <summary>Why <see cref="MissingPageServer"/> cannot be used, or null.</summary>
    public string? MissingPagesUnavailableReason { get; private init; }

    /// <summary>Throws <see cref="TrackingUnavailableException"/> unless kernel dirty tracking works here.</summary>
    public void EnsureDirtyTracking()
    {
        if (DirtyTrackingUnavailableReason is { } r) throw new TrackingUnavailableException(r);
    }

    /// <summary>Throws <see cref="TrackingUnavailableException"/> unless missing-page serving works here.</summary>
    public void EnsureMissingPages()
    {
        if (MissingPagesUnavailableReason is { } r) throw new TrackingUnavailableException(r);
    }

    /// <summary>One paragraph for logs and `ferry` diagnostics.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Available ? $"userfaultfd via {OpenedVia}, features 0x{Features:x} ({FeatureNames(Features)})" : "userfaultfd unavailable");
        sb.Append(PagemapScan ? "; PAGEMAP_SCAN present" : "; no PAGEMAP_SCAN");
        sb.Append("; dirty tracking: ").Append(DirtyTrackingUnavailableReason ?? "kernel");
        sb.Append("; post-copy: ").Append(MissingPagesUnavailableReason ?? "kernel");
        return sb.ToString();
    }

    /// <summary>Probes again (the cached <see cref="Current"/> is what the trackers use).</summary>
    public static UserfaultfdSupport Probe()
    {
        var fd = Userfaultfd.OpenRaw(out var via, out var openReason);
        if (fd < 0)
        {
            return new UserfaultfdSupport
            {
                PagemapScan = ProbePagemapScan(out _),
                DirtyTrackingUnavailableReason = openReason,
                MissingPagesUnavailableReason = openReason,
            };
        }

        var api = new UffdioApi { Api = UFFD_API, Features = 0 };
        var rc = ioctl(fd, UFFDIO_API, &api);
        var apiErr = rc == 0 ? 0 : Errno;
        close(fd);
        if (rc != 0)
        {
            var r = $"UFFDIO_API handshake failed: {Describe(apiErr)}";
            return new UserfaultfdSupport { PagemapScan = ProbePagemapScan(out _), DirtyTrackingUnavailableReason = r, MissingPagesUnavailableReason = r };
        }

        var features = api.Features;
        var missing = VerifyMissingRecipe(out var missingReason);
        var scan = ProbePagemapScan(out var scanReason);

        string? dirtyReason = null;
        var lacking = new List<string>();
        if ((features & UFFD_FEATURE_WP_ASYNC) == 0) lacking.Add("UFFD_FEATURE_WP_ASYNC (Linux 6.7+)");
        if ((features & UFFD_FEATURE_WP_UNPOPULATED) == 0) lacking.Add("UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4+)");
        if ((features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) == 0) lacking.Add("write-protect mode (CONFIG_HAVE_ARCH_USERFAULTFD_WP)");
        if (lacking.Count > 0) dirtyReason = $"the kernel's userfaultfd lacks {string.Join(", ", lacking)}; it has features 0x{features:x}";
        else if (!scan) dirtyReason = scanReason;

        var verified = false;
        if (dirtyReason is null)
        {
            verified = VerifyDirtyRecipe(out var verifyReason);
            if (!verified) dirtyReason = verifyReason;
        }

        return new UserfaultfdSupport
        {
            Available = true,
            OpenedVia = via,
            Features = features,
            Missing = missing,
            PagemapScan = scan,
            DirtyTrackingVerified = verified,
            DirtyTrackingUnavailableReason = dirtyReason,
            MissingPagesUnavailableReason = missingReason,
        };
    }

    /// <summary>PAGEMAP_SCAN with no output buffer over one scratch page: ENOTTY means the kernel predates it (6.7).</summary>
    private static bool ProbePagemapScan(out string? reason)
    {
        var pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (pm < 0)
        {
            reason = "cannot open /proc/self/pagemap: " + Describe(Errno);
            return false;
        }
        var page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        try
        {
            var arg = new PmScanArg { Size = (ulong)sizeof(PmScanArg), Start = (ulong)page, End = (ulong)page + 4096 };
            if (ioctl(pm, PAGEMAP_SCAN, &arg) >= 0)
            {
                reason = null;
                return true;
            }
            var e = Errno;
            reason = e == ENOTTY || e == EINVAL
                ? "the PAGEMAP_SCAN ioctl on /proc/self/pagemap is missing (Linux 6.7+ is needed)"
                : "PAGEMAP_SCAN failed: " + Describe(e);
            return false;
        }
        finally
        {
            munmap(page, 4096);
            close(pm);
        }
    }

    /// <summary>Protects a fresh memory, writes one page, and checks that PAGEMAP_SCAN reports exactly it, then nothing.</summary>
    private static bool VerifyDirtyRecipe(out string? reason)
    {
        reason = null;
        try
        {
            using var memory = new LinearMemory(1, 1, false, 65536);
            using var tracker = new KernelDirtyTracker(memory, checkSupport: false);
            tracker.Start();
            memory.Base[5 * 4096 + 7] = 1;
            _ = memory.Base[9 * 4096];
            var pages = new List<long>();
            tracker.Collect(pages);
            if (pages.Count != 1 || pages[0] != 5)
            {
                reason = $"the dirty-tracking self-test reported pages [{string.Join(",", pages)}] instead of [5]";
                return false;
            }
            pages.Clear();
            tracker.Collect(pages);
            if (pages.Count != 0)
            {
                reason = $"the dirty-tracking self-test reported pages [{string.Join(",", pages)}] on a second scan instead of none";
                return false;
            }
            return true;
        }
        catch (Exception e) when (e is TrackingException or TrackingUnavailableException)
        {
            reason = "the dirty-tracking self-test failed: " + e.Message;
            return false;
        }
    }

    /// <summary>Registers a fresh page for missing faults and fills it with UFFDIO_COPY (no fault is needed for that).</summary>
    private static bool VerifyMissingRecipe(out string? reason)
    {
        reason = null;
        var page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        var buffer = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(4096, 4096);
        try
        {
            using var uffd = Userfaultfd.Create(0);
            uffd.Register(page, 4096, UFFDIO_REGISTER_MODE_MISSING);
            new Span<byte>(buffer, 4096).Fill(0x5A);
            var e = uffd.Copy(page, buffer, 4096);
            if (e != 0)
            {
                reason = "the post-copy self-test's UFFDIO_COPY failed: " + Describe(e);
                return false;
            }
            if (((byte*)page)[4095] != 0x5A)
            {
                reason = "the post-copy self-test read back wrong contents after UFFDIO_COPY";
                return false;
            }
            return true;
        }
        catch (Exception ex) when (ex is TrackingException or TrackingUnavailableException)
        {
            reason = "the post-copy self-test failed: " + ex.Message;
            return false;
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
            munmap(page, 4096);
        }
    }

    internal static string FeatureNames(ulong features)
    {
        string[] names =
        [
            "PAGEFAULT_FLAG_WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE", "MISSING_HUGETLBFS", "MISSING_SHMEM",
            "EVENT_UNMAP", "SIGBUS", "THREAD_ID", "MINOR_HUGETLBFS", "MINOR_SHMEM", "EXACT_ADDRESS",
            "WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON", "WP_ASYNC", "MOVE",
        ];
        var list = new List<string>();
        for (var i = 0; i < 64; i++)
        {
            if ((features & (1UL << i)) == 0) continue;
            list.Add(i < names.Length ? names[i] : $"bit{i}");
        }
        return list.Count == 0 ? "none" : string.Join(" ", list);
    }
}
