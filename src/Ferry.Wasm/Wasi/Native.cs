using System.Runtime.InteropServices;

namespace Ferry.Wasm.Wasi;

/// <summary>
/// The Linux system calls the WASI host uses, through libc. Paths are NUL-terminated UTF-8 byte pointers;
/// results follow libc (−1 and errno). Linux only: the sandbox relies on openat2's RESOLVE_BENEATH (Linux 5.6+).
/// </summary>
internal static unsafe partial class Sys
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100,
        O_TRUNC = 0x200, O_APPEND = 0x400, O_NONBLOCK = 0x800, O_DSYNC = 0x1000, O_DIRECTORY = 0x10000,
        O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_SYNC = 0x101000, O_PATH = 0x200000;
    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;
    public const ulong RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_BENEATH = 0x08;
    public const int F_GETFL = 3, F_SETFL = 4;
    public const int SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2;
    public const short POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 0x10, POLLNVAL = 0x20;
    public const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;
    public const int CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_PROCESS_CPUTIME_ID = 2, CLOCK_THREAD_CPUTIME_ID = 3;
    public const long UTIME_NOW = (1L << 30) - 1, UTIME_OMIT = (1L << 30) - 2;
    public const uint STATX_BASIC_STATS = 0x7ff;
    public const int S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000, S_IFBLK = 0x6000,
        S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;
    public const int EINTR = 4, EAGAIN = 11, EXDEV = 18, ELOOP = 40, ENOTDIR = 20;
    private const long SYS_openat2 = 437, SYS_getdents64 = 217;

    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags, Mode, Resolve;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Sec, Nsec;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events, Revents;
    }

    /// <summary>struct statx (256 bytes); only the fields Ferry reads are named.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    public struct Statx
    {
        [FieldOffset(16)] public uint Nlink;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Ino;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(64)] public long AtimeSec;
        [FieldOffset(72)] public uint AtimeNsec;
        [FieldOffset(96)] public long CtimeSec;
        [FieldOffset(104)] public uint CtimeNsec;
        [FieldOffset(112)] public long MtimeSec;
        [FieldOffset(120)] public uint MtimeNsec;
        [FieldOffset(136)] public uint DevMajor;
        [FieldOffset(140)] public uint DevMinor;

        public readonly ulong Dev => ((ulong)(DevMajor & 0xfffff000) << 32) | ((ulong)(DevMajor & 0xfff) << 8)
            | ((ulong)(DevMinor & 0xffffff00) << 12) | (DevMinor & 0xff);
    }

    public static int Errno => Marshal.GetLastPInvokeError();

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall4(long number, long a1, long a2, long a3, long a4);

    /// <summary>openat2(2): opens <paramref name="path"/> relative to <paramref name="dirFd"/> with the given resolve flags.</summary>
    public static int OpenAt2(int dirFd, byte* path, int flags, int mode, ulong resolve)
    {
        // openat2 refuses a mode without O_CREAT (EINVAL), unlike openat.
        var how = new OpenHow { Flags = (ulong)(uint)(flags | O_CLOEXEC), Mode = (flags & O_CREAT) != 0 ? (ulong)mode : 0, Resolve = resolve };
        return (int)Syscall4(SYS_openat2, dirFd, (long)path, (long)&how, sizeof(OpenHow));
    }

    public static long GetDents64(int fd, byte* buffer, int size) => Syscall4(SYS_getdents64, fd, (long)buffer, size, 0);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint pread(int fd, byte* buf, nint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint pwrite(int fd, byte* buf, nint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int dup(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    /// <summary>Returns an errno value directly (0 on success).</summary>
    [LibraryImport("libc")]
    public static partial int posix_fadvise(int fd, long offset, long len, int advice);

    /// <summary>Returns an errno value directly (0 on success).</summary>
    [LibraryImport("libc")]
    public static partial int posix_fallocate(int fd, long offset, long len);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int statx(int dirFd, byte* path, int flags, uint mask, Statx* buf);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int mkdirat(int dirFd, byte* path, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int unlinkat(int dirFd, byte* path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int renameat(int oldDirFd, byte* oldPath, int newDirFd, byte* newPath);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int linkat(int oldDirFd, byte* oldPath, int newDirFd, byte* newPath, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int symlinkat(byte* target, int newDirFd, byte* linkPath);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint readlinkat(int dirFd, byte* path, byte* buf, nint size);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int utimensat(int dirFd, byte* path, Timespec* times, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int futimens(int fd, Timespec* times);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int clock_gettime(int clockId, Timespec* tp);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int clock_getres(int clockId, Timespec* res);

    [LibraryImport("libc")]
    public static partial int sched_yield();

    /// <summary>The host path an open descriptor refers to now (via /proc/self/fd), or null.</summary>
    public static string? PathOf(int fd)
    {
        try
        {
            return new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
