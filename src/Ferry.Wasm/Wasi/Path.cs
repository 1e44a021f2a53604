using System.Runtime.CompilerServices;
using System.Text;

namespace Ferry.Wasm.Wasi;

/// <summary>
/// Path functions. The sandbox: every path is resolved by the kernel relative to a directory descriptor with
/// openat2(2) and RESOLVE_BENEATH, which refuses absolute paths, ".." above the directory and symlinks (absolute,
/// or relative ones that climb out) that would leave it — the guest gets NotCapable. Operations on a last
/// component (mkdir, unlink, rename, link, symlink, readlink, lstat) first open its parent that way and then act
/// on the single name with the *at(2) call, so nothing is ever resolved outside the preopen.
/// </summary>
public sealed unsafe partial class WasiHost
{
    private const ulong Beneath = Sys.RESOLVE_BENEATH | Sys.RESOLVE_NO_MAGICLINKS;

    /// <summary>A directory descriptor with the <paramref name="needed"/> rights.</summary>
    private Errno Directory(int fd, Rights needed, out FdEntry entry)
    {
        entry = Context.Get(fd)!;
        if (entry is null) return Errno.BadF;
        if (!entry.IsDirectory) return Errno.NotDir;
        return (entry.Base & needed) == needed ? Errno.Success : Errno.NotCapable;
    }

    private static Errno OpenError(int errno) => errno == Sys.EXDEV ? Errno.NotCapable : ErrnoMapping.FromLinux(errno);

    /// <summary>openat2 beneath <paramref name="dirFd"/>; returns the host fd or a negated errno (EXDEV → NotCapable).</summary>
    private static int OpenBeneath(int dirFd, byte* path, int flags, int mode, out Errno error)
    {
        error = Errno.Success;
        var fd = Sys.OpenAt2(dirFd, path, flags, mode, Beneath);
        if (fd < 0) error = OpenError(Sys.Errno);
        return fd;
    }

    /// <summary>
    /// Splits a path into the parent (opened beneath <paramref name="dirFd"/> as an O_PATH descriptor, or the
    /// directory itself) and the last component (kept with any trailing slashes, which the kernel interprets).
    /// <paramref name="lastIsDots"/> reports a last component of "." or "..", which callers must not act on by name.
    /// </summary>
    private static Errno OpenParent(int dirFd, byte[] path, out int parentFd, out byte[] last, out bool lastIsDots)
    {
        parentFd = dirFd;
        var len = path.Length - 1; // without the NUL
        var end = len;
        while (end > 1 && path[end - 1] == '/') end--;
        var slash = Array.LastIndexOf(path, (byte)'/', end - 1);
        var lastStart = slash + 1;
        var name = path.AsSpan(lastStart, end - lastStart);
        lastIsDots = name.SequenceEqual("."u8) || name.SequenceEqual(".."u8);
        last = path[lastStart..];
        if (path[0] == '/') return Errno.NotCapable;
        if (slash < 0) return Errno.Success;
        var parent = new byte[slash + 2];
        path.AsSpan(0, slash + 1).CopyTo(parent); // keep the slash: "a/" (or "/" → refused above)
        fixed (byte* p = parent)
        {
            var fd = OpenBeneath(dirFd, p, Sys.O_PATH | Sys.O_DIRECTORY, 0, out var err);
            if (fd < 0) return err;
            parentFd = fd;
        }
        return Errno.Success;
    }

    private static void CloseParent(int parentFd, int dirFd)
    {
        if (parentFd != dirFd) Marshalling.CloseQuietly(parentFd);
    }

    /// <summary>
    /// For "." / ".." last components: checks the whole path stays beneath (NotCapable otherwise) and returns
    /// <paramref name="otherwise"/>, the error the operation gives on such a name.
    /// </summary>
    private static Errno DotsError(int dirFd, byte[] path, Errno otherwise)
    {
        fixed (byte* p = path)
        {
            var fd = OpenBeneath(dirFd, p, Sys.O_PATH | Sys.O_NOFOLLOW, 0, out var err);
            if (fd < 0) return err;
            Marshalling.CloseQuietly(fd);
        }
        return otherwise;
    }

    /// <summary>
    /// path_open(fd, dirflags: lookupflags u32 (1 = follow symlinks), path: *u8, path_len: u32, oflags: u16
    /// (1 creat, 2 directory, 4 excl, 8 trunc), fs_rights_base: u64, fs_rights_inheriting: u64, fdflags: u16,
    /// fd_out: *u32). Opens beneath <c>fd</c>; the new descriptor's rights are those requested, limited to the
    /// directory's inheriting rights and to what the file type supports. The host descriptor is opened for
    /// reading if read/readdir rights are requested and for writing if write-like rights are.
    /// </summary>
    private int PathOpen(int fd, int dirflags, int path, int pathLen, int oflags, long rightsBase, long rightsInheriting, int fdflags, int fdOut)
    {
        var o = (OFlags)oflags;
        var needed = Rights.PathOpen | ((o & OFlags.Creat) != 0 ? Rights.PathCreateFile : 0) | ((o & OFlags.Trunc) != 0 ? Rights.PathFilestatSetSize : 0);
        var err = Directory(fd, needed, out var dir);
        if (err != Errno.Success) return Fail(err);
        if ((oflags & ~0xf) != 0 || (fdflags & ~0x1f) != 0) return Fail(Errno.Inval);
        err = ReadPath(path, pathLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        if (Ptr(fdOut, 4) == null) return Fail(Errno.Fault);
        var requested = (Rights)rightsBase & dir.Inheriting;
        var inheriting = (Rights)rightsInheriting & dir.Inheriting;
        var flags = (FdFlags)fdflags;
        var read = (requested & (Rights.FdRead | Rights.FdReaddir)) != 0;
        var write = (requested & (Rights.FdWrite | Rights.FdDatasync | Rights.FdAllocate | Rights.FdFilestatSetSize)) != 0
            || (flags & FdFlags.Append) != 0 || (o & OFlags.Trunc) != 0;
        var hostFlags = Sys.O_NOCTTY | WasiContext.HostFlags(flags);
        hostFlags |= write ? (read ? Sys.O_RDWR : Sys.O_WRONLY) : Sys.O_RDONLY;
        if ((o & OFlags.Creat) != 0) hostFlags |= Sys.O_CREAT;
        if ((o & OFlags.Excl) != 0) hostFlags |= Sys.O_EXCL;
        if ((o & OFlags.Trunc) != 0) hostFlags |= Sys.O_TRUNC;
        if ((o & OFlags.Directory) != 0) hostFlags |= Sys.O_DIRECTORY;
        if ((dirflags & WasiAbi.LookupSymlinkFollow) == 0) hostFlags |= Sys.O_NOFOLLOW;
        if ((o & OFlags.Directory) != 0 && write) return Fail(Errno.IsDir);

        int hostFd;
        fixed (byte* p = bytes)
        {
            hostFd = OpenBeneath(dir.HostFd, p, hostFlags, 0x1b6 /* 0666, less umask */, out err);
        }
        if (hostFd < 0) return Fail(err == Errno.Loop && (dirflags & WasiAbi.LookupSymlinkFollow) == 0 ? Errno.Loop : err);
        Sys.Statx st;
        var empty = (byte)0;
        if (Sys.statx(hostFd, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) != 0)
        {
            var e2 = LinuxError();
            Marshalling.CloseQuietly(hostFd);
            return e2;
        }
        var type = WasiContext.TypeOfMode(st.Mode);
        var isDir = type == FileType.Directory;
        var entry = new FdEntry
        {
            Kind = isDir ? WasiFdKind.Directory : WasiFdKind.File,
            HostFd = hostFd,
            PreopenIndex = dir.PreopenIndex,
            GuestPath = JoinGuest(dir.GuestPath, Encoding.UTF8.GetString(bytes, 0, bytes.Length - 1)),
            Type = type,
            Read = read || isDir,
            Write = write,
            Flags = flags,
            Base = requested & (isDir ? Rights.Directory : type == FileType.RegularFile ? Rights.RegularFile : Rights.Stream),
            Inheriting = inheriting,
        };
        var newFd = Context.Allocate(entry);
        Unsafe.WriteUnaligned(Ptr(fdOut, 4), (uint)newFd);
        return Ok;
    }

    /// <summary>Lexical join used until capture refines the path from the host (normalises "." and "..").</summary>
    private static string JoinGuest(string dir, string path)
    {
        var parts = new List<string>();
        foreach (var part in (dir + "/" + path).Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..")
            {
                if (parts.Count > 0) parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(part);
        }
        return parts.Count == 0 ? "." : string.Join('/', parts);
    }

    /// <summary>path_create_directory(fd, path: *u8, path_len: u32): mkdirat(2) beneath fd.</summary>
    private int PathCreateDirectory(int fd, int path, int pathLen) =>
        OnLastComponent(fd, Rights.PathCreateDirectory, path, pathLen, Errno.Exist,
            static (parent, name) => Sys.mkdirat(parent, name, 0x1ff /* 0777, less umask */));

    /// <summary>path_remove_directory(fd, path: *u8, path_len: u32): unlinkat(2) with AT_REMOVEDIR beneath fd.</summary>
    private int PathRemoveDirectory(int fd, int path, int pathLen) =>
        OnLastComponent(fd, Rights.PathRemoveDirectory, path, pathLen, Errno.NotEmpty,
            static (parent, name) => Sys.unlinkat(parent, name, Sys.AT_REMOVEDIR));

    /// <summary>path_unlink_file(fd, path: *u8, path_len: u32): unlinkat(2) beneath fd (directories give IsDir).</summary>
    private int PathUnlinkFile(int fd, int path, int pathLen) =>
        OnLastComponent(fd, Rights.PathUnlinkFile, path, pathLen, Errno.IsDir,
            static (parent, name) => Sys.unlinkat(parent, name, 0));

    private delegate int NameOperation(int parentFd, byte* name);

    private int OnLastComponent(int fd, Rights needed, int path, int pathLen, Errno onDots, NameOperation op)
    {
        var err = Directory(fd, needed, out var dir);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(path, pathLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        err = OpenParent(dir.HostFd, bytes, out var parent, out var last, out var dots);
        if (err != Errno.Success) return Fail(err);
        try
        {
            if (dots) return Fail(DotsError(dir.HostFd, bytes, onDots));
            fixed (byte* name = last)
            {
                return op(parent, name) == 0 ? Ok : LinuxError();
            }
        }
        finally
        {
            CloseParent(parent, dir.HostFd);
        }
    }

    /// <summary>
    /// path_filestat_get(fd, flags: lookupflags u32, path: *u8, path_len: u32, buf: *filestat): stat of the path
    /// beneath fd (following a final symlink only with lookupflags 1). filestat layout: see fd_filestat_get.
    /// </summary>
    private int PathFilestatGet(int fd, int lookupFlags, int path, int pathLen, int buf)
    {
        var err = Directory(fd, Rights.PathFilestatGet, out var dir);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(path, pathLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        var p = Ptr(buf, WasiAbi.FilestatSize);
        if (p == null) return Fail(Errno.Fault);
        var follow = (lookupFlags & WasiAbi.LookupSymlinkFollow) != 0;
        int target;
        fixed (byte* pp = bytes)
        {
            target = OpenBeneath(dir.HostFd, pp, Sys.O_PATH | (follow ? 0 : Sys.O_NOFOLLOW), 0, out err);
        }
        if (target < 0) return Fail(err);
        try
        {
            Sys.Statx st;
            var empty = (byte)0;
            if (Sys.statx(target, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) != 0) return LinuxError();
            WriteFilestat(p, in st);
            return Ok;
        }
        finally
        {
            Marshalling.CloseQuietly(target);
        }
    }

    /// <summary>
    /// path_filestat_set_times(fd, flags: lookupflags u32, path: *u8, path_len: u32, atim: u64, mtim: u64,
    /// fst_flags: u16): utimensat(2) on the path beneath fd (see fd_filestat_set_times for the flags).
    /// </summary>
    private int PathFilestatSetTimes(int fd, int lookupFlags, int path, int pathLen, long atim, long mtim, int fstFlags)
    {
        var err = Directory(fd, Rights.PathFilestatSetTimes, out var dir);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(path, pathLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        if (!Times(atim, mtim, fstFlags, out var a, out var m)) return Fail(Errno.Inval);
        var times = stackalloc Sys.Timespec[2];
        times[0] = a;
        times[1] = m;
        var follow = (lookupFlags & WasiAbi.LookupSymlinkFollow) != 0;
        if (!follow)
        {
            err = OpenParent(dir.HostFd, bytes, out var parent, out var last, out var dots);
            if (err != Errno.Success) return Fail(err);
            if (!dots)
            {
                try
                {
                    fixed (byte* name = last)
                    {
                        return Sys.utimensat(parent, name, times, Sys.AT_SYMLINK_NOFOLLOW) == 0 ? Ok : LinuxError();
                    }
                }
                finally
                {
                    CloseParent(parent, dir.HostFd);
                }
            }
            CloseParent(parent, dir.HostFd);
        }
        // Resolve beneath (following), then act on the resolved file through its /proc/self/fd link.
        int target;
        fixed (byte* pp = bytes)
        {
            target = OpenBeneath(dir.HostFd, pp, Sys.O_PATH, 0, out err);
        }
        if (target < 0) return Fail(err);
        try
        {
            var proc = Encoding.ASCII.GetBytes($"/proc/self/fd/{target}\0");
            fixed (byte* pp = proc)
            {
                return Sys.utimensat(Sys.AT_FDCWD, pp, times, 0) == 0 ? Ok : LinuxError();
            }
        }
        finally
        {
            Marshalling.CloseQuietly(target);
        }
    }

    /// <summary>
    /// path_readlink(fd, path: *u8, path_len: u32, buf: *u8, buf_len: u32, bufused_out: *u32): the symlink's
    /// contents, cut at buf_len (no NUL).
    /// </summary>
    private int PathReadlink(int fd, int path, int pathLen, int buf, int bufLen, int bufusedOut)
    {
        var err = Directory(fd, Rights.PathReadlink, out var dir);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(path, pathLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        var dst = Ptr(buf, (uint)bufLen);
        if (dst == null || Ptr(bufusedOut, 4) == null) return Fail(Errno.Fault);
        err = OpenParent(dir.HostFd, bytes, out var parent, out var last, out var dots);
        if (err != Errno.Success) return Fail(err);
        try
        {
            if (dots) return Fail(DotsError(dir.HostFd, bytes, Errno.Inval));
            var tmp = new byte[4096];
            nint n;
            fixed (byte* name = last)
            fixed (byte* t = tmp)
            {
                n = Sys.readlinkat(parent, name, t, tmp.Length);
            }
            if (n < 0) return LinuxError();
            var count = (int)Math.Min(n, (uint)bufLen);
            tmp.AsSpan(0, count).CopyTo(new Span<byte>(dst, count));
            Unsafe.WriteUnaligned(Ptr(bufusedOut, 4), (uint)count);
            return Ok;
        }
        finally
        {
            CloseParent(parent, dir.HostFd);
        }
    }

    /// <summary>
    /// path_rename(fd, old_path: *u8, old_path_len: u32, new_fd, new_path: *u8, new_path_len: u32): renameat(2),
    /// both names beneath their directories.
    /// </summary>
    private int PathRename(int fd, int oldPath, int oldLen, int newFd, int newPath, int newLen)
    {
        var err = Directory(fd, Rights.PathRenameSource, out var from);
        if (err != Errno.Success) return Fail(err);
        err = Directory(newFd, Rights.PathRenameTarget, out var to);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(oldPath, oldLen, out var oldBytes);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(newPath, newLen, out var newBytes);
        if (err != Errno.Success) return Fail(err);
        return TwoNames(from.HostFd, oldBytes, to.HostFd, newBytes, Errno.Busy,
            static (p1, n1, p2, n2) => Sys.renameat(p1, n1, p2, n2));
    }

    /// <summary>
    /// path_link(old_fd, old_flags: lookupflags u32, old_path: *u8, old_path_len: u32, new_fd, new_path: *u8,
    /// new_path_len: u32): a hard link. With lookupflags 1 a final symlink of the old path is followed — beneath
    /// the directory — and the file it names is linked (through its /proc/self/fd link).
    /// </summary>
    private int PathLink(int oldFd, int oldFlags, int oldPath, int oldLen, int newFd, int newPath, int newLen)
    {
        var err = Directory(oldFd, Rights.PathLinkSource, out var from);
        if (err != Errno.Success) return Fail(err);
        err = Directory(newFd, Rights.PathLinkTarget, out var to);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(oldPath, oldLen, out var oldBytes);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(newPath, newLen, out var newBytes);
        if (err != Errno.Success) return Fail(err);
        if ((oldFlags & WasiAbi.LookupSymlinkFollow) == 0)
        {
            return TwoNames(from.HostFd, oldBytes, to.HostFd, newBytes, Errno.Exist,
                static (p1, n1, p2, n2) => Sys.linkat(p1, n1, p2, n2, 0));
        }
        int target;
        fixed (byte* p = oldBytes)
        {
            target = OpenBeneath(from.HostFd, p, Sys.O_PATH, 0, out err);
        }
        if (target < 0) return Fail(err);
        try
        {
            var proc = Encoding.ASCII.GetBytes($"/proc/self/fd/{target}\0");
            err = OpenParent(to.HostFd, newBytes, out var parent, out var last, out var dots);
            if (err != Errno.Success) return Fail(err);
            try
            {
                if (dots) return Fail(DotsError(to.HostFd, newBytes, Errno.Exist));
                fixed (byte* pp = proc)
                fixed (byte* name = last)
                {
                    const int AT_SYMLINK_FOLLOW = 0x400;
                    return Sys.linkat(Sys.AT_FDCWD, pp, parent, name, AT_SYMLINK_FOLLOW) == 0 ? Ok : LinuxError();
                }
            }
            finally
            {
                CloseParent(parent, to.HostFd);
            }
        }
        finally
        {
            Marshalling.CloseQuietly(target);
        }
    }

    private delegate int TwoNameOperation(int parent1, byte* name1, int parent2, byte* name2);

    private int TwoNames(int dir1, byte[] path1, int dir2, byte[] path2, Errno onDots, TwoNameOperation op)
    {
        var err = OpenParent(dir1, path1, out var parent1, out var last1, out var dots1);
        if (err != Errno.Success) return Fail(err);
        try
        {
            err = OpenParent(dir2, path2, out var parent2, out var last2, out var dots2);
            if (err != Errno.Success) return Fail(err);
            try
            {
                if (dots1) return Fail(DotsError(dir1, path1, onDots));
                if (dots2) return Fail(DotsError(dir2, path2, onDots));
                fixed (byte* n1 = last1)
                fixed (byte* n2 = last2)
                {
                    return op(parent1, n1, parent2, n2) == 0 ? Ok : LinuxError();
                }
            }
            finally
            {
                CloseParent(parent2, dir2);
            }
        }
        finally
        {
            CloseParent(parent1, dir1);
        }
    }

    /// <summary>
    /// path_symlink(old_path: *u8, old_path_len: u32, fd, new_path: *u8, new_path_len: u32): creates new_path (beneath
    /// fd) as a symlink whose contents are old_path. Absolute contents are refused (NotCapable); relative ones may
    /// point anywhere, since following a link is always checked beneath the preopen.
    /// </summary>
    private int PathSymlink(int oldPath, int oldLen, int fd, int newPath, int newLen)
    {
        var err = Directory(fd, Rights.PathSymlink, out var dir);
        if (err != Errno.Success) return Fail(err);
        err = ReadPath(oldPath, oldLen, out var target);
        if (err != Errno.Success) return Fail(err);
        if (target[0] == '/') return Fail(Errno.NotCapable);
        err = ReadPath(newPath, newLen, out var bytes);
        if (err != Errno.Success) return Fail(err);
        err = OpenParent(dir.HostFd, bytes, out var parent, out var last, out var dots);
        if (err != Errno.Success) return Fail(err);
        try
        {
            if (dots) return Fail(DotsError(dir.HostFd, bytes, Errno.Exist));
            fixed (byte* t = target)
            fixed (byte* name = last)
            {
                return Sys.symlinkat(t, parent, name) == 0 ? Ok : LinuxError();
            }
        }
        finally
        {
            CloseParent(parent, dir.HostFd);
        }
    }
}
