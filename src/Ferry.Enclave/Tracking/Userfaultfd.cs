using static Ferry.Enclave.Tracking.Native;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// One userfaultfd file descriptor with its API handshake done (Documentation/admin-guide/mm/userfaultfd.rst).
/// Thin wrappers over the ioctls; errors come back as errno values where callers must tell them apart
/// (EEXIST from UFFDIO_COPY means "already present"), as <see cref="TrackingException"/> elsewhere.
/// </summary>
internal sealed unsafe class Userfaultfd : IDisposable
{
    private int fd;

    private Userfaultfd(int fd, ulong features, string openedVia)
    {
        this.fd = fd;
        Features = features;
        OpenedVia = openedVia;
    }

    public int Fd => fd;
    /// <summary>The features enabled by the handshake.</summary>
    public ulong Features { get; }
    public string OpenedVia { get; }

    /// <summary>Opens a userfaultfd (non-blocking, close-on-exec) and enables <paramref name="features"/>.</summary>
    /// <exception cref="TrackingUnavailableException">userfaultfd cannot be opened or lacks a feature.</exception>
    public static Userfaultfd Create(ulong features)
    {
        var fd = OpenRaw(out var via, out var reason);
        if (fd < 0) throw new TrackingUnavailableException(reason!);
        var api = new UffdioApi { Api = UFFD_API, Features = features };
        if (ioctl(fd, UFFDIO_API, &api) != 0)
        {
            var e = Errno;
            close(fd);
            var have = QueryFeatures();
            var missing = features & ~have;
            throw new TrackingUnavailableException(missing != 0
                ? $"the kernel lacks userfaultfd features {UserfaultfdSupport.FeatureNames(missing)} (has 0x{have:x}); Linux 6.7 or later is needed"
                : $"UFFDIO_API with features 0x{features:x} failed: {Describe(e)}");
        }
        return new Userfaultfd(fd, api.Features, via);
    }

    /// <summary>The features the kernel supports (UFFDIO_API with none requested on a scratch descriptor), or 0.</summary>
    internal static ulong QueryFeatures()
    {
        var fd = OpenRaw(out _, out _);
        if (fd < 0) return 0;
        var api = new UffdioApi { Api = UFFD_API };
        var rc = ioctl(fd, UFFDIO_API, &api);
        close(fd);
        return rc == 0 ? api.Features : 0;
    }

    /// <summary>
    /// Opens a userfaultfd: the userfaultfd(2) system call first, again with UFFD_USER_MODE_ONLY if that is refused,
    /// then /dev/userfaultfd with USERFAULTFD_IOC_NEW (Linux 6.1+, governed by the device's file permissions).
    /// Returns -1 and a reason a user can act on when every way fails.
    /// </summary>
    internal static int OpenRaw(out string via, out string? reason, bool deviceOnly = false)
    {
        const int flags = O_CLOEXEC | O_NONBLOCK;
        reason = null;
        var nr = SysUserfaultfd;
        int sysErr = ENOSYS, userOnlyErr = 0;
        if (nr > 0 && !deviceOnly)
        {
            var fd = (int)syscall((nint)nr, flags);
            if (fd >= 0)
            {
                via = "userfaultfd(2)";
                return fd;
            }
            sysErr = Errno;
            if (sysErr == EPERM)
            {
                fd = (int)syscall((nint)nr, flags | UFFD_USER_MODE_ONLY);
                if (fd >= 0)
                {
                    via = "userfaultfd(2) with UFFD_USER_MODE_ONLY";
                    return fd;
                }
                userOnlyErr = Errno;
            }
        }

        int devErr;
        var dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0)
        {
            var fd = ioctl(dev, USERFAULTFD_IOC_NEW, (void*)flags);
            devErr = fd >= 0 ? 0 : Errno;
            close(dev);
            if (fd >= 0)
            {
                via = "/dev/userfaultfd";
                return fd;
            }
        }
        else
        {
            devErr = Errno;
        }

        via = "";
        reason = ExplainOpenFailure(sysErr, userOnlyErr, devErr);
        return -1;
    }

    private static string ExplainOpenFailure(int sysErr, int userOnlyErr, int devErr)
    {
        var uid = geteuid();
        var sysctl = ReadSysctl("/proc/sys/vm/unprivileged_userfaultfd");
        var dev = devErr switch
        {
            ENOENT => "/dev/userfaultfd does not exist (Linux before 6.1, or devtmpfs lacks it)",
            EACCES or EPERM => "/dev/userfaultfd is not accessible to this user",
            _ => "/dev/userfaultfd: " + Describe(devErr),
        };
        if (SysUserfaultfd < 0) return $"userfaultfd is not supported on {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}";
        if (sysErr == ENOSYS)
        {
            return "the userfaultfd system call does not exist (kernel built without CONFIG_USERFAULTFD, or a seccomp filter "
                + $"returns ENOSYS); {dev}";
        }
        if (sysErr == EPERM)
        {
            var why = uid == 0
                ? "refused although running as root: a seccomp filter blocks it (container runtimes' default profiles do) or an LSM denies it"
                : $"not permitted for uid {uid}: not root and without CAP_SYS_PTRACE, and vm.unprivileged_userfaultfd = {sysctl ?? "?"} "
                  + "(set it to 1, run as root, or grant access to /dev/userfaultfd)";
            var userOnly = userOnlyErr == EINVAL ? "; UFFD_USER_MODE_ONLY is unknown to this kernel (before 5.11)"
                : userOnlyErr != 0 ? "; with UFFD_USER_MODE_ONLY: " + Describe(userOnlyErr) : "";
            return $"userfaultfd(2) {why}{userOnly}; {dev}";
        }
        return $"userfaultfd(2) failed: {Describe(sysErr)}; {dev}";
    }

    private static string? ReadSysctl(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>UFFDIO_REGISTER; returns the ioctls allowed on the range (bit n = ioctl number n).</summary>
    public ulong Register(nint start, ulong length, ulong mode)
    {
        var reg = new UffdioRegister { Range = new UffdioRange { Start = (ulong)start, Len = length }, Mode = mode };
        if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
        {
            var e = Errno;
            var what = $"UFFDIO_REGISTER of {length} bytes at 0x{start:x} (mode {mode})";
            if (e == EBUSY) what += " (the memory is already registered with another userfaultfd: another KernelDirtyTracker or a MissingPageServer)";
            throw new TrackingException(what, e);
        }
        return reg.Ioctls;
    }

    /// <summary>UFFDIO_UNREGISTER; returns 0 or the errno.</summary>
    public int Unregister(nint start, ulong length)
    {
        var range = new UffdioRange { Start = (ulong)start, Len = length };
        return ioctl(fd, UFFDIO_UNREGISTER, &range) == 0 ? 0 : Errno;
    }

    /// <summary>UFFDIO_WRITEPROTECT: sets (or clears) write protection on a registered range.</summary>
    public void WriteProtect(nint start, ulong length, bool protect)
    {
        var wp = new UffdioWriteprotect
        {
            Range = new UffdioRange { Start = (ulong)start, Len = length },
            Mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
        };
        while (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0)
        {
            var e = Errno;
            if (e == EAGAIN || e == EINTR) continue;
            throw new TrackingException($"UFFDIO_WRITEPROTECT of {length} bytes at 0x{start:x}", e);
        }
    }

    /// <summary>UFFDIO_COPY of whole pages; returns 0, or the errno (EEXIST: a page is already mapped there).</summary>
    public int Copy(nint dst, void* src, ulong length, bool wake = true)
    {
        var copy = new UffdioCopy { Dst = (ulong)dst, Src = (ulong)src, Len = length, Mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE };
        while (true)
        {
            if (ioctl(fd, UFFDIO_COPY, &copy) == 0) return 0;
            var e = Errno;
            // EAGAIN: the mapping changed under the copy (or it was partial); retry the remainder.
            if (e == EAGAIN && copy.Copy > 0 && (ulong)copy.Copy < copy.Len)
            {
                copy.Dst += (ulong)copy.Copy;
                copy.Src += (ulong)copy.Copy;
                copy.Len -= (ulong)copy.Copy;
                copy.Copy = 0;
                continue;
            }
            if (e == EAGAIN || e == EINTR)
            {
                copy.Copy = 0;
                continue;
            }
            return e;
        }
    }

    /// <summary>UFFDIO_ZEROPAGE; returns 0 or the errno.</summary>
    public int ZeroPage(nint dst, ulong length, bool wake = true)
    {
        var z = new UffdioZeropage { Range = new UffdioRange { Start = (ulong)dst, Len = length }, Mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE };
        while (true)
        {
            if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0) return 0;
            var e = Errno;
            if (e == EAGAIN || e == EINTR)
            {
                z.Zeropage = 0;
                continue;
            }
            return e;
        }
    }

    /// <summary>UFFDIO_WAKE: wakes threads waiting on faults in the range.</summary>
    public int Wake(nint start, ulong length)
    {
        var range = new UffdioRange { Start = (ulong)start, Len = length };
        return ioctl(fd, UFFDIO_WAKE, &range) == 0 ? 0 : Errno;
    }

    public void Dispose()
    {
        var f = Interlocked.Exchange(ref fd, -1);
        if (f >= 0) close(f);
        GC.SuppressFinalize(this);
    }

    ~Userfaultfd()
    {
        if (fd >= 0) close(fd);
    }
}
