using System.Runtime.InteropServices;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// The Linux interfaces the tracking code uses: libc calls, the userfaultfd ioctls and structures
/// (include/uapi/linux/userfaultfd.h) and PAGEMAP_SCAN (include/uapi/linux/fs.h, Documentation/admin-guide/mm/pagemap.rst).
/// The ioctl numbers are computed like the kernel's _IOWR/_IOR macros and were checked against the installed
/// headers with a C program (values in docs/tracking.md); names the Debian headers lack are defined here.
/// </summary>
internal static unsafe partial class Native
{
    // ---- errno values used (asm-generic/errno-base.h, errno.h) ----
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ENOTTY = 25;
    public const int ENOSYS = 38;

    // ---- open/mmap flags (x86-64 and arm64 agree on these) ----
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MADV_DONTNEED = 4;
    public const int MADV_POPULATE_READ = 22;
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 0x1;
    public const short POLLERR = 0x8;
    public const short POLLHUP = 0x10;

    // ---- userfaultfd ----
    /// <summary>userfaultfd(2) system call number: 323 on x86-64, 282 on arm64 (asm-generic/unistd.h).</summary>
    public static long SysUserfaultfd => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 323,
        Architecture.Arm64 => 282,
        _ => -1,
    };

    /// <summary>userfaultfd flag: only faults raised by user-mode accesses (Linux 5.11+); lets unprivileged users in when the sysctl is 0.</summary>
    public const int UFFD_USER_MODE_ONLY = 1;
    public const ulong UFFD_API = 0xAA;

    public const ulong UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1UL << 0;
    public const ulong UFFD_FEATURE_EVENT_FORK = 1UL << 1;
    public const ulong UFFD_FEATURE_EVENT_REMAP = 1UL << 2;
    public const ulong UFFD_FEATURE_EVENT_REMOVE = 1UL << 3;
    public const ulong UFFD_FEATURE_EVENT_UNMAP = 1UL << 6;
    public const ulong UFFD_FEATURE_SIGBUS = 1UL << 7;
    public const ulong UFFD_FEATURE_THREAD_ID = 1UL << 8;
    public const ulong UFFD_FEATURE_EXACT_ADDRESS = 1UL << 11;
    public const ulong UFFD_FEATURE_WP_UNPOPULATED = 1UL << 13;
    public const ulong UFFD_FEATURE_POISON = 1UL << 14;
    public const ulong UFFD_FEATURE_WP_ASYNC = 1UL << 15;
    public const ulong UFFD_FEATURE_MOVE = 1UL << 16;

    public const ulong UFFDIO_REGISTER_MODE_MISSING = 1UL << 0;
    public const ulong UFFDIO_REGISTER_MODE_WP = 1UL << 1;
    public const ulong UFFDIO_COPY_MODE_DONTWAKE = 1UL << 0;
    public const ulong UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1UL << 0;
    public const ulong UFFDIO_WRITEPROTECT_MODE_WP = 1UL << 0;

    /// <summary>Bits of uffdio_register.ioctls / uffdio_api.ioctls: bit n means ioctl number n is allowed.</summary>
    public const ulong UFFDIO_IOCTL_COPY_BIT = 1UL << 0x03;
    public const ulong UFFDIO_IOCTL_ZEROPAGE_BIT = 1UL << 0x04;
    public const ulong UFFDIO_IOCTL_WRITEPROTECT_BIT = 1UL << 0x06;

    public const byte UFFD_EVENT_PAGEFAULT = 0x12;
    public const byte UFFD_EVENT_FORK = 0x13;
    public const byte UFFD_EVENT_REMAP = 0x14;
    public const byte UFFD_EVENT_REMOVE = 0x15;
    public const byte UFFD_EVENT_UNMAP = 0x16;
    public const ulong UFFD_PAGEFAULT_FLAG_WRITE = 1UL << 0;
    public const ulong UFFD_PAGEFAULT_FLAG_WP = 1UL << 1;

    // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr; dir: 1 = write (_IOW), 2 = read (_IOR), 3 = both.
    private static nuint Ioc(uint dir, uint type, uint nr, int size) => (nuint)((dir << 30) | ((uint)size << 16) | (type << 8) | nr);

    public static readonly nuint USERFAULTFD_IOC_NEW = Ioc(0, 0xAA, 0x00, 0);
    public static readonly nuint UFFDIO_API = Ioc(3, 0xAA, 0x3F, sizeof(UffdioApi));
    public static readonly nuint UFFDIO_REGISTER = Ioc(3, 0xAA, 0x00, sizeof(UffdioRegister));
    public static readonly nuint UFFDIO_UNREGISTER = Ioc(2, 0xAA, 0x01, sizeof(UffdioRange));
    public static readonly nuint UFFDIO_WAKE = Ioc(2, 0xAA, 0x02, sizeof(UffdioRange));
    public static readonly nuint UFFDIO_COPY = Ioc(3, 0xAA, 0x03, sizeof(UffdioCopy));
    public static readonly nuint UFFDIO_ZEROPAGE = Ioc(3, 0xAA, 0x04, sizeof(UffdioZeropage));
    public static readonly nuint UFFDIO_WRITEPROTECT = Ioc(3, 0xAA, 0x06, sizeof(UffdioWriteprotect));

    // ---- PAGEMAP_SCAN (Linux 6.7+) ----
    public static readonly nuint PAGEMAP_SCAN = Ioc(3, 'f', 16, sizeof(PmScanArg));
    public const ulong PM_SCAN_WP_MATCHING = 1UL << 0;
    public const ulong PM_SCAN_CHECK_WPASYNC = 1UL << 1;
    public const ulong PAGE_IS_WPALLOWED = 1UL << 0;
    public const ulong PAGE_IS_WRITTEN = 1UL << 1;
    public const ulong PAGE_IS_PRESENT = 1UL << 3;

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioApi
    {
        public ulong Api;
        public ulong Features;
        public ulong Ioctls;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioRange
    {
        public ulong Start;
        public ulong Len;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioRegister
    {
        public UffdioRange Range;
        public ulong Mode;
        public ulong Ioctls;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioCopy
    {
        public ulong Dst;
        public ulong Src;
        public ulong Len;
        public ulong Mode;
        public long Copy;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioZeropage
    {
        public UffdioRange Range;
        public ulong Mode;
        public long Zeropage;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct UffdioWriteprotect
    {
        public UffdioRange Range;
        public ulong Mode;
    }

    /// <summary>struct uffd_msg (32 bytes): event at 0; for page faults, flags at 8, address at 16, thread id at 24.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 32)]
    public struct UffdMsg
    {
        [FieldOffset(0)] public byte Event;
        [FieldOffset(8)] public ulong PagefaultFlags;
        [FieldOffset(16)] public ulong PagefaultAddress;
        [FieldOffset(24)] public uint PagefaultThreadId;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PmScanArg
    {
        public ulong Size;
        public ulong Flags;
        public ulong Start;
        public ulong End;
        public ulong WalkEnd;
        public ulong Vec;
        public ulong VecLen;
        public ulong MaxPages;
        public ulong CategoryInverted;
        public ulong CategoryMask;
        public ulong CategoryAnyofMask;
        public ulong ReturnMask;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PageRegion
    {
        public ulong Start;
        public ulong End;
        public ulong Categories;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    // ---- libc ----
    [LibraryImport("libc", SetLastError = true)]
    public static partial nint syscall(nint number, nint arg0);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    public static partial nint syscall(nint number, nint arg0, nint arg1, nint arg2, nint arg3, nint arg4);

    // Numbers shared by every architecture (the syscall table is unified from 424 on).
    public const nint SYS_pidfd_open = 434;
    public const nint SYS_process_madvise = 440;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public nint Base;
        public nuint Length;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int madvise(nint addr, nuint length, int advice);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int geteuid();

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>"ENOMEM (Cannot allocate memory)" style text for an errno value.</summary>
    public static string Describe(int errno) => $"{Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";

    private static string Name(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        ENOTTY => "ENOTTY",
        ENOSYS => "ENOSYS",
        _ => "errno " + errno,
    };
}
