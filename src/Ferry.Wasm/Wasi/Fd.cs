using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Wasi;

public sealed unsafe partial class WasiHost
{
    /// <summary>Looks up an open descriptor that has <paramref name="needed"/> rights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Errno Lookup(int fd, Rights needed, out FdEntry entry)
    {
        entry = Context.Get(fd)!;
        if (entry is null) return Errno.BadF;
        return (entry.Base & needed) == needed ? Errno.Success : Errno.NotCapable;
    }

    /// <summary>
    /// fd_write(fd, iovs: *ciovec[iovs_len], iovs_len: u32, nwritten_out: *u32). A ciovec is {buf: u32, buf_len: u32}
    /// (8 bytes). Stdout is buffered (flushed at exit, before stdin reads and before stderr writes); stderr and files
    /// are written through. Allocation-free.
    /// </summary>
    private int FdWrite(int fd, int iovs, int iovsLen, int nwrittenOut)
    {
        var err = Lookup(fd, Rights.FdWrite, out var e);
        if (err != Errno.Success) return Fail(err);
        var vec = Ptr(iovs, (long)(uint)iovsLen * WasiAbi.IovecSize);
        if (vec == null) return Fail(Errno.Fault);
        long total = 0;
        if (e.Stdio is { } ch)
        {
            if (ch.Index == 2) Context.StdioChannel(1).Flush();
            for (var i = 0; i < iovsLen; i++)
            {
                var buf = Unsafe.ReadUnaligned<int>(vec + 8 * i);
                var len = Unsafe.ReadUnaligned<uint>(vec + 8 * i + 4);
                var p = Ptr(buf, len);
                if (p == null) return Fail(Errno.Fault);
                var w = ch.Write(new ReadOnlySpan<byte>(p, (int)len));
                if (w != Errno.Success) return Fail(w);
                total += len;
            }
        }
        else
        {
            for (var i = 0; i < iovsLen; i++)
            {
                var buf = Unsafe.ReadUnaligned<int>(vec + 8 * i);
                var len = Unsafe.ReadUnaligned<uint>(vec + 8 * i + 4);
                var p = Ptr(buf, len);
                if (p == null) return Fail(Errno.Fault);
                var n = Sys.write(e.HostFd, p, (nint)len);
                if (n < 0)
                {
                    if (total > 0) break;
                    return LinuxError();
                }
                total += n;
                if (n < len) break;
            }
        }
        return TryWriteU32(nwrittenOut, (uint)total) ? Ok : Fail(Errno.Fault);
    }

    /// <summary>
    /// fd_read(fd, iovs: *iovec[iovs_len], iovs_len: u32, nread_out: *u32). Reads into each buffer in turn and stops
    /// at a short read. Stdin (or a pipe) waits with poll(2) and the freeze event: if a freeze is requested while
    /// waiting, nothing is read, the guest is told to unwind, and the call is re-executed after resume.
    /// </summary>
    private int FdRead(int fd, int iovs, int iovsLen, int nreadOut)
    {
        var err = Lookup(fd, Rights.FdRead, out var e);
        if (err != Errno.Success) return Fail(err);
        var vec = Ptr(iovs, (long)(uint)iovsLen * WasiAbi.IovecSize);
        if (vec == null || Ptr(nreadOut, 4) == null) return Fail(Errno.Fault);
        long total = 0;
        for (var i = 0; i < iovsLen; i++)
        {
            var buf = Unsafe.ReadUnaligned<int>(vec + 8 * i);
            var len = Unsafe.ReadUnaligned<uint>(vec + 8 * i + 4);
            var p = Ptr(buf, len);
            if (p == null) return Fail(Errno.Fault);
            if (len == 0) continue;
            long n;
            if (e.Stdio is { } ch)
            {
                // Only the first read may block; later buffers take what is there.
                if (total > 0 && ch.IsHostFd && !ReadyNow(ch.HostFd)) break;
                if (ch.Index == 0) Context.StdioChannel(1).Flush();
                n = ch.Read(p, (int)Math.Min(len, int.MaxValue), Context, out var readErr);
                if (n == -1) return Ok; // freeze: unwinding, nothing consumed
                if (n == -2)
                {
                    if (total > 0) break;
                    return Fail(readErr);
                }
            }
            else
            {
                if (e.Type != FileType.RegularFile && total == 0 && !ReadyNow(e.HostFd))
                {
                    // A pipe or device opened by path: wait interruptibly, like stdin.
                    if (!Context.WaitReadable(e.HostFd)) return Ok;
                }
                n = Sys.read(e.HostFd, p, (nint)len);
                if (n < 0)
                {
                    if (total > 0) break;
                    return LinuxError();
                }
            }
            total += n;
            if (n < len) break;
        }
        Unsafe.WriteUnaligned(Ptr(nreadOut, 4), (uint)total);
        return Ok;
    }

    private static bool ReadyNow(int hostFd)
    {
        var pfd = new Sys.PollFd { Fd = hostFd, Events = Sys.POLLIN };
        return Sys.poll(&pfd, 1, 0) > 0;
    }

    /// <summary>fd_pread(fd, iovs: *iovec, iovs_len, offset: u64, nread_out: *u32): reads at an offset without moving the position.</summary>
    private int FdPread(int fd, int iovs, int iovsLen, long offset, int nreadOut)
    {
        var err = Lookup(fd, Rights.FdRead | Rights.FdSeek, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.Stdio is not null || e.IsDirectory) return Fail(e.IsDirectory ? Errno.IsDir : Errno.SPipe);
        if (offset < 0) return Fail(Errno.Inval);
        var vec = Ptr(iovs, (long)(uint)iovsLen * WasiAbi.IovecSize);
        if (vec == null) return Fail(Errno.Fault);
        long total = 0;
        for (var i = 0; i < iovsLen; i++)
        {
            var buf = Unsafe.ReadUnaligned<int>(vec + 8 * i);
            var len = Unsafe.ReadUnaligned<uint>(vec + 8 * i + 4);
            var p = Ptr(buf, len);
            if (p == null) return Fail(Errno.Fault);
            var n = Sys.pread(e.HostFd, p, (nint)len, offset + total);
            if (n < 0)
            {
                if (total > 0) break;
                return LinuxError();
            }
            total += n;
            if (n < len) break;
        }
        return TryWriteU32(nreadOut, (uint)total) ? Ok : Fail(Errno.Fault);
    }

    /// <summary>fd_pwrite(fd, iovs: *ciovec, iovs_len, offset: u64, nwritten_out: *u32): writes at an offset without moving the position.</summary>
    private int FdPwrite(int fd, int iovs, int iovsLen, long offset, int nwrittenOut)
    {
        var err = Lookup(fd, Rights.FdWrite | Rights.FdSeek, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.Stdio is not null || e.IsDirectory) return Fail(e.IsDirectory ? Errno.IsDir : Errno.SPipe);
        if (offset < 0) return Fail(Errno.Inval);
        var vec = Ptr(iovs, (long)(uint)iovsLen * WasiAbi.IovecSize);
        if (vec == null) return Fail(Errno.Fault);
        long total = 0;
        for (var i = 0; i < iovsLen; i++)
        {
            var buf = Unsafe.ReadUnaligned<int>(vec + 8 * i);
            var len = Unsafe.ReadUnaligned<uint>(vec + 8 * i + 4);
            var p = Ptr(buf, len);
            if (p == null) return Fail(Errno.Fault);
            var n = Sys.pwrite(e.HostFd, p, (nint)len, offset + total);
            if (n < 0)
            {
                if (total > 0) break;
                return LinuxError();
            }
            total += n;
            if (n < len) break;
        }
        return TryWriteU32(nwrittenOut, (uint)total) ? Ok : Fail(Errno.Fault);
    }

    /// <summary>
    /// fd_seek(fd, offset: s64, whence: u8 (0 set, 1 cur, 2 end), newoffset_out: *u64). Needs FdSeek, or FdTell
    /// for the query form (offset 0 from cur). Streams give SPipe.
    /// </summary>
    private int FdSeek(int fd, long offset, int whence, int newOffsetOut)
    {
        var e = Context.Get(fd);
        if (e is null) return Fail(Errno.BadF);
        // Terminals and pipes cannot seek whatever their rights (as lseek(2) says).
        if (e.Stdio is not null && e.Type != FileType.RegularFile) return Fail(Errno.SPipe);
        var needed = offset == 0 && whence == WasiAbi.WhenceCur ? Rights.FdTell : Rights.FdSeek;
        if ((e.Base & needed) != needed) return Fail(Errno.NotCapable);
        if (whence is < 0 or > 2) return Fail(Errno.Inval);
        if (e.IsDirectory) return Fail(Errno.IsDir);
        var r = Sys.lseek(e.HostFd, offset, whence);
        if (r < 0) return LinuxError();
        return TryWriteU64(newOffsetOut, (ulong)r) ? Ok : Fail(Errno.Fault);
    }

    /// <summary>fd_tell(fd, offset_out: *u64): the current position.</summary>
    private int FdTell(int fd, int offsetOut) => FdSeek(fd, 0, WasiAbi.WhenceCur, offsetOut);

    /// <summary>fd_close(fd): closes any descriptor (stdio only leaves the table; the host's streams stay open).</summary>
    private int FdClose(int fd) => Fail(Context.Close(fd));

    /// <summary>fd_renumber(from, to): moves descriptor from onto to (which must be open; it is closed first).</summary>
    private int FdRenumber(int from, int to) => Fail(Context.Renumber(from, to));

    /// <summary>fd_sync(fd): fsync(2). For stdio, flushes Ferry's buffer.</summary>
    private int FdSync(int fd)
    {
        var err = Lookup(fd, Rights.FdSync, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.Stdio is { } ch) return Fail(ch.Flush());
        return Sys.fsync(e.HostFd) == 0 ? Ok : LinuxError();
    }

    /// <summary>fd_datasync(fd): fdatasync(2).</summary>
    private int FdDatasync(int fd)
    {
        var err = Lookup(fd, Rights.FdDatasync, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.Stdio is { } ch) return Fail(ch.Flush());
        if (e.IsDirectory) return Fail(Errno.BadF);
        return Sys.fdatasync(e.HostFd) == 0 ? Ok : LinuxError();
    }

    /// <summary>fd_advise(fd, offset: u64, len: u64, advice: u8 0–5): posix_fadvise(2); a hint.</summary>
    private int FdAdvise(int fd, long offset, long len, int advice)
    {
        var err = Lookup(fd, Rights.FdAdvise, out var e);
        if (err != Errno.Success) return Fail(err);
        if (advice is < 0 or > WasiAbi.AdviceNoReuse) return Fail(Errno.Inval);
        if (e.IsDirectory) return Fail(Errno.BadF);
        if (e.Stdio is not null) return Fail(Errno.SPipe);
        if (offset < 0 || len < 0) return Fail(Errno.Inval);
        // WASI numbers sequential 1 and random 2; Linux POSIX_FADV_RANDOM is 1 and SEQUENTIAL 2; the rest agree.
        var hostAdvice = advice switch { 1 => 2, 2 => 1, _ => advice };
        var r = Sys.posix_fadvise(e.HostFd, offset, len, hostAdvice);
        return r == 0 ? Ok : Fail(ErrnoMapping.FromLinux(r));
    }

    /// <summary>fd_allocate(fd, offset: u64, len: u64): posix_fallocate(2), so the file is at least offset+len bytes.</summary>
    private int FdAllocate(int fd, long offset, long len)
    {
        var err = Lookup(fd, Rights.FdAllocate, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.IsDirectory) return Fail(Errno.BadF);
        if (e.Stdio is not null) return Fail(Errno.SPipe);
        if (offset < 0 || len <= 0) return Fail(Errno.Inval);
        var r = Sys.posix_fallocate(e.HostFd, offset, len);
        return r == 0 ? Ok : Fail(ErrnoMapping.FromLinux(r));
    }

    /// <summary>
    /// fd_fdstat_get(fd, buf: *fdstat). fdstat (24 bytes): fs_filetype u8 @0, fs_flags u16 @2,
    /// fs_rights_base u64 @8, fs_rights_inheriting u64 @16.
    /// </summary>
    private int FdFdstatGet(int fd, int buf)
    {
        var e = Context.Get(fd);
        if (e is null) return Fail(Errno.BadF);
        var p = Ptr(buf, WasiAbi.FdstatSize);
        if (p == null) return Fail(Errno.Fault);
        new Span<byte>(p, WasiAbi.FdstatSize).Clear();
        p[0] = (byte)e.Type;
        Unsafe.WriteUnaligned(p + 2, (ushort)e.Flags);
        Unsafe.WriteUnaligned(p + 8, (ulong)e.Base);
        Unsafe.WriteUnaligned(p + 16, (ulong)e.Inheriting);
        return Ok;
    }

    /// <summary>
    /// fd_fdstat_set_flags(fd, flags: fdflags u16). Append and NonBlock change on the host descriptor (F_SETFL);
    /// the sync flags cannot change after open (NotSup), like Linux.
    /// </summary>
    private int FdFdstatSetFlags(int fd, int flags)
    {
        var err = Lookup(fd, Rights.FdFdstatSetFlags, out var e);
        if (err != Errno.Success) return Fail(err);
        var wanted = (FdFlags)(ushort)flags;
        if ((flags & ~0x1f) != 0) return Fail(Errno.Inval);
        const FdFlags syncFlags = FdFlags.Dsync | FdFlags.Rsync | FdFlags.Sync;
        if ((wanted & syncFlags) != (e.Flags & syncFlags)) return Fail(Errno.NotSup);
        if (e.HostFd >= 0 && e.Stdio is null)
        {
            var current = Sys.fcntl(e.HostFd, Sys.F_GETFL, 0);
            if (current < 0) return LinuxError();
            var next = current & ~(Sys.O_APPEND | Sys.O_NONBLOCK);
            if ((wanted & FdFlags.Append) != 0) next |= Sys.O_APPEND;
            if ((wanted & FdFlags.NonBlock) != 0) next |= Sys.O_NONBLOCK;
            if (Sys.fcntl(e.HostFd, Sys.F_SETFL, next) < 0) return LinuxError();
        }
        e.Flags = wanted;
        return Ok;
    }

    /// <summary>fd_fdstat_set_rights(fd, base: u64, inheriting: u64): rights can only be dropped (NotCapable otherwise).</summary>
    private int FdFdstatSetRights(int fd, long rightsBase, long rightsInheriting)
    {
        var e = Context.Get(fd);
        if (e is null) return Fail(Errno.BadF);
        var b = (Rights)rightsBase;
        var inh = (Rights)rightsInheriting;
        if ((b & ~e.Base) != 0 || (inh & ~e.Inheriting) != 0) return Fail(Errno.NotCapable);
        e.Base = b;
        e.Inheriting = inh;
        return Ok;
    }

    /// <summary>
    /// fd_filestat_get(fd, buf: *filestat). filestat (64 bytes): dev u64 @0, ino u64 @8, filetype u8 @16,
    /// nlink u64 @24, size u64 @32, atim u64 @40, mtim u64 @48, ctim u64 @56 (times in ns since the epoch).
    /// </summary>
    private int FdFilestatGet(int fd, int buf)
    {
        var err = Lookup(fd, Rights.FdFilestatGet, out var e);
        if (err != Errno.Success) return Fail(err);
        var p = Ptr(buf, WasiAbi.FilestatSize);
        if (p == null) return Fail(Errno.Fault);
        if (e.HostFd < 0)
        {
            new Span<byte>(p, WasiAbi.FilestatSize).Clear();
            p[16] = (byte)e.Type;
            return Ok;
        }
        Sys.Statx st;
        var empty = (byte)0;
        if (Sys.statx(e.HostFd, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) != 0) return LinuxError();
        WriteFilestat(p, in st);
        return Ok;
    }

    private static void WriteFilestat(byte* p, in Sys.Statx st)
    {
        new Span<byte>(p, WasiAbi.FilestatSize).Clear();
        Unsafe.WriteUnaligned(p, st.Dev);
        Unsafe.WriteUnaligned(p + 8, st.Ino);
        p[16] = (byte)WasiContext.TypeOfMode(st.Mode);
        Unsafe.WriteUnaligned(p + 24, (ulong)st.Nlink);
        Unsafe.WriteUnaligned(p + 32, st.Size);
        Unsafe.WriteUnaligned(p + 40, (ulong)(st.AtimeSec * 1_000_000_000 + st.AtimeNsec));
        Unsafe.WriteUnaligned(p + 48, (ulong)(st.MtimeSec * 1_000_000_000 + st.MtimeNsec));
        Unsafe.WriteUnaligned(p + 56, (ulong)(st.CtimeSec * 1_000_000_000 + st.CtimeNsec));
    }

    /// <summary>fd_filestat_set_size(fd, size: u64): ftruncate(2).</summary>
    private int FdFilestatSetSize(int fd, long size)
    {
        var err = Lookup(fd, Rights.FdFilestatSetSize, out var e);
        if (err != Errno.Success) return Fail(err);
        if (e.IsDirectory) return Fail(Errno.IsDir);
        if (size < 0) return Fail(Errno.Inval);
        return Sys.ftruncate(e.HostFd, size) == 0 ? Ok : LinuxError();
    }

    /// <summary>
    /// fd_filestat_set_times(fd, atim: u64, mtim: u64, fst_flags: u16 (1 atim, 2 atim_now, 4 mtim, 8 mtim_now)):
    /// futimens(2). Setting both a time and "now" for the same field is Inval.
    /// </summary>
    private int FdFilestatSetTimes(int fd, long atim, long mtim, int fstFlags)
    {
        var err = Lookup(fd, Rights.FdFilestatSetTimes, out var e);
        if (err != Errno.Success) return Fail(err);
        if (!Times(atim, mtim, fstFlags, out var a, out var m)) return Fail(Errno.Inval);
        if (e.HostFd < 0) return Fail(Errno.BadF);
        var times = stackalloc Sys.Timespec[2];
        times[0] = a;
        times[1] = m;
        return Sys.futimens(e.HostFd, times) == 0 ? Ok : LinuxError();
    }

    private static bool Times(long atim, long mtim, int flags, out Sys.Timespec a, out Sys.Timespec m)
    {
        a = m = default;
        if ((flags & ~0xf) != 0) return false;
        if ((flags & WasiAbi.FstAtim) != 0 && (flags & WasiAbi.FstAtimNow) != 0) return false;
        if ((flags & WasiAbi.FstMtim) != 0 && (flags & WasiAbi.FstMtimNow) != 0) return false;
        a = One(atim, flags & WasiAbi.FstAtim, flags & WasiAbi.FstAtimNow);
        m = One(mtim, flags & WasiAbi.FstMtim, flags & WasiAbi.FstMtimNow);
        return true;

        static Sys.Timespec One(long ns, int set, int now) =>
            now != 0 ? new Sys.Timespec { Nsec = Sys.UTIME_NOW }
            : set != 0 ? new Sys.Timespec { Sec = (long)((ulong)ns / 1_000_000_000), Nsec = (long)((ulong)ns % 1_000_000_000) }
            : new Sys.Timespec { Nsec = Sys.UTIME_OMIT };
    }

    /// <summary>fd_prestat_get(fd, buf: *prestat). prestat (8 bytes): tag u8 @0 (0 = dir), pr_name_len u32 @4. BadF if not a preopen.</summary>
    private int FdPrestatGet(int fd, int buf)
    {
        var e = Context.Get(fd);
        if (e is null || e.Kind != WasiFdKind.Preopen) return Fail(Errno.BadF);
        var p = Ptr(buf, WasiAbi.PrestatSize);
        if (p == null) return Fail(Errno.Fault);
        var name = Context.Preopens[e.PreopenIndex].GuestPath;
        Unsafe.WriteUnaligned(p, 0UL);
        p[0] = WasiAbi.PreopenDir;
        Unsafe.WriteUnaligned(p + 4, (uint)System.Text.Encoding.UTF8.GetByteCount(name));
        return Ok;
    }

    /// <summary>fd_prestat_dir_name(fd, path: *u8, path_len: u32): the preopen's guest name (not NUL-terminated).</summary>
    private int FdPrestatDirName(int fd, int path, int pathLen)
    {
        var e = Context.Get(fd);
        if (e is null || e.Kind != WasiFdKind.Preopen) return Fail(Errno.BadF);
        var name = System.Text.Encoding.UTF8.GetBytes(Context.Preopens[e.PreopenIndex].GuestPath);
        if ((uint)pathLen < (uint)name.Length) return Fail(Errno.NameTooLong);
        var p = Ptr(path, name.Length);
        if (p == null) return Fail(Errno.Fault);
        name.CopyTo(new Span<byte>(p, name.Length));
        return Ok;
    }

    /// <summary>
    /// fd_readdir(fd, buf: *u8, buf_len: u32, cookie: u64, bufused_out: *u32). Writes dirents from position
    /// <c>cookie</c>: each a 24-byte header — d_next u64 @0 (the cookie of the next entry), d_ino u64 @8,
    /// d_namlen u32 @16, d_type u8 @20 — followed by the name (no NUL). The last entry is cut at buf_len;
    /// bufused &lt; buf_len means the end was reached. Cookie 0 re-reads the directory; the listing is kept for
    /// the following pages (and in snapshots), so a paged read is consistent.
    /// </summary>
    private int FdReaddir(int fd, int buf, int bufLen, long cookie, int bufusedOut)
    {
        var e = Context.Get(fd);
        if (e is null) return Fail(Errno.BadF);
        if (!e.IsDirectory) return Fail(Errno.NotDir);
        if ((e.Base & Rights.FdReaddir) == 0) return Fail(Errno.NotCapable);
        var dst = Ptr(buf, (uint)bufLen);
        if (dst == null || Ptr(bufusedOut, 4) == null) return Fail(Errno.Fault);
        if (cookie < 0) return Fail(Errno.Inval);
        if (cookie == 0 || e.Listing is null)
        {
            var r = ReadListing(e.HostFd, out var listing);
            if (r != Errno.Success) return Fail(r);
            e.Listing = listing;
        }
        var entries = e.Listing;
        uint used = 0;
        var header = stackalloc byte[WasiAbi.DirentSize];
        for (var i = cookie; i < entries.Count && used < (uint)bufLen; i++)
        {
            var entry = entries[(int)i];
            var name = System.Text.Encoding.UTF8.GetBytes(entry.Name);
            Unsafe.WriteUnaligned(header, (ulong)(i + 1));
            Unsafe.WriteUnaligned(header + 8, entry.Inode);
            Unsafe.WriteUnaligned(header + 16, (uint)name.Length);
            Unsafe.WriteUnaligned(header + 20, 0u);
            header[20] = (byte)entry.Type;
            used += Copy(new ReadOnlySpan<byte>(header, WasiAbi.DirentSize), dst + used, (uint)bufLen - used);
            used += Copy(name, dst + used, (uint)bufLen - used);
        }
        Unsafe.WriteUnaligned(Ptr(bufusedOut, 4), used);
        return Ok;

        static uint Copy(ReadOnlySpan<byte> from, byte* to, uint room)
        {
            var n = (int)Math.Min((uint)from.Length, room);
            from[..n].CopyTo(new Span<byte>(to, n));
            return (uint)n;
        }
    }

    private static Errno ReadListing(int hostFd, out List<WasiDirEntryState> listing)
    {
        listing = [];
        if (Sys.lseek(hostFd, 0, Sys.SEEK_SET) < 0) return ErrnoMapping.FromLinux(Sys.Errno);
        const int size = 32 * 1024;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(size);
        try
        {
            fixed (byte* b = buffer)
            {
                while (true)
                {
                    var n = Sys.GetDents64(hostFd, b, size);
                    if (n < 0) return ErrnoMapping.FromLinux(Sys.Errno);
                    if (n == 0) break;
                    for (long off = 0; off < n;)
                    {
                        var d = b + off;
                        var ino = Unsafe.ReadUnaligned<ulong>(d);
                        var reclen = Unsafe.ReadUnaligned<ushort>(d + 16);
                        var dtype = d[18];
                        var nameStart = d + 19;
                        var nameLen = new ReadOnlySpan<byte>(nameStart, reclen - 19).IndexOf((byte)0);
                        var name = System.Text.Encoding.UTF8.GetString(nameStart, nameLen);
                        listing.Add(new WasiDirEntryState(name, ino, DirentType(dtype)));
                        off += reclen;
                    }
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        // getdents order depends on the file system's hashing; sort so listings are deterministic across hosts.
        listing.Sort((x, y) => string.CompareOrdinal(x.Name, y.Name));
        return Errno.Success;
    }

    private static FileType DirentType(byte dtype) => dtype switch
    {
        1 => FileType.Unknown, // FIFO: preview1 has no type for it
        2 => FileType.CharacterDevice,
        4 => FileType.Directory,
        6 => FileType.BlockDevice,
        8 => FileType.RegularFile,
        10 => FileType.SymbolicLink,
        12 => FileType.SocketStream,
        _ => FileType.Unknown,
    };
}
