using System.Text;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>Each preview1 function called at the ABI level: memory layouts and exact errno values.</summary>
public sealed class AbiTests : IDisposable
{
    private readonly TempDir dir = new();
    private readonly Abi abi;
    private const int Root = 3; // the preopen

    public AbiTests()
    {
        abi = new Abi(new WasiOptions
        {
            Args = ["prog", "héllo", ""],
            Env = ["A=1", "B=two=2"],
            Preopens = [new WasiPreopen(dir.Path, "/sandbox")],
        });
    }

    public void Dispose()
    {
        abi.Dispose();
        dir.Dispose();
    }

    [Fact]
    public void All_46_functions_are_registered()
    {
        Assert.Equal(46, abi.Host.FunctionNames.Count);
        Assert.Equal(Abi.Functions.Select(f => f.Name).Order(), abi.Host.FunctionNames.Order());
    }

    [Fact]
    public void Errno_values_are_the_specs()
    {
        Assert.Equal(0, (int)Errno.Success);
        Assert.Equal(8, (int)Errno.BadF);
        Assert.Equal(20, (int)Errno.Exist);
        Assert.Equal(21, (int)Errno.Fault);
        Assert.Equal(28, (int)Errno.Inval);
        Assert.Equal(31, (int)Errno.IsDir);
        Assert.Equal(44, (int)Errno.NoEnt);
        Assert.Equal(52, (int)Errno.NoSys);
        Assert.Equal(54, (int)Errno.NotDir);
        Assert.Equal(55, (int)Errno.NotEmpty);
        Assert.Equal(70, (int)Errno.SPipe);
        Assert.Equal(76, (int)Errno.NotCapable);
        Assert.Equal(77, Enum.GetValues<Errno>().Length);
        Assert.Equal(Errno.NoEnt, ErrnoMapping.FromLinux(2));
        Assert.Equal(Errno.NotEmpty, ErrnoMapping.FromLinux(39));
    }

    [Fact]
    public void Args_and_environ_are_laid_out_as_pointer_arrays_and_nul_terminated_strings()
    {
        var count = abi.Alloc(4);
        var size = abi.Alloc(4);
        Assert.Equal(Errno.Success, abi.Call("args_sizes_get", count, size));
        Assert.Equal(3u, abi.U32(count));
        Assert.Equal((uint)("prog\0".Length + Encoding.UTF8.GetByteCount("héllo\0") + 1), abi.U32(size));
        var argv = abi.Alloc(12);
        var buf = abi.Alloc((int)abi.U32(size));
        Assert.Equal(Errno.Success, abi.Call("args_get", argv, buf));
        Assert.Equal((uint)buf, abi.U32(argv));
        Assert.Equal("prog\0héllo\0\0", Encoding.UTF8.GetString(abi.Read(buf, (int)abi.U32(size))));
        Assert.Equal((uint)buf + 5, abi.U32(argv + 4));

        Assert.Equal(Errno.Success, abi.Call("environ_sizes_get", count, size));
        Assert.Equal(2u, abi.U32(count));
        var envp = abi.Alloc(8);
        var ebuf = abi.Alloc((int)abi.U32(size));
        Assert.Equal(Errno.Success, abi.Call("environ_get", envp, ebuf));
        Assert.Equal("A=1\0B=two=2\0", Encoding.UTF8.GetString(abi.Read(ebuf, (int)abi.U32(size))));
        Assert.Equal(Errno.Fault, abi.Call("args_get", (int)abi.Memory.Size - 4, buf));
    }

    [Fact]
    public void Clocks_report_time_and_reject_unknown_ids()
    {
        var t = abi.Alloc(8);
        Assert.Equal(Errno.Success, abi.Call("clock_time_get", 0, 1L, t));
        var wall = (long)abi.U64(t);
        var hostNow = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;
        Assert.InRange(wall, hostNow - 60_000_000_000, hostNow + 60_000_000_000);
        Assert.Equal(Errno.Success, abi.Call("clock_time_get", 1, 1L, t));
        var m1 = abi.U64(t);
        Assert.Equal(Errno.Success, abi.Call("clock_time_get", 1, 1L, t));
        Assert.True(abi.U64(t) >= m1);
        foreach (var id in new[] { 2, 3 })
        {
            Assert.Equal(Errno.Success, abi.Call("clock_time_get", id, 1L, t));
            Assert.True(abi.U64(t) > 0);
            Assert.Equal(Errno.Success, abi.Call("clock_res_get", id, t));
            Assert.True(abi.U64(t) > 0);
        }
        Assert.Equal(Errno.Inval, abi.Call("clock_time_get", 4, 1L, t));
        Assert.Equal(Errno.Inval, abi.Call("clock_res_get", 9, t));
        Assert.Equal(Errno.Fault, abi.Call("clock_time_get", 1, 1L, (int)abi.Memory.Size - 7));
    }

    [Fact]
    public void Random_get_fills_the_buffer()
    {
        var b = abi.Alloc(64);
        Assert.Equal(Errno.Success, abi.Call("random_get", b, 64));
        var first = abi.Read(b, 64);
        Assert.Equal(Errno.Success, abi.Call("random_get", b, 64));
        Assert.NotEqual(first, abi.Read(b, 64));
        Assert.Equal(Errno.Fault, abi.Call("random_get", (int)abi.Memory.Size - 10, 64));
    }

    [Fact]
    public void Prestat_names_the_preopen()
    {
        var p = abi.Alloc(8);
        Assert.Equal(Errno.Success, abi.Call("fd_prestat_get", Root, p));
        Assert.Equal(0, abi.U8(p));
        Assert.Equal((uint)"/sandbox".Length, abi.U32(p + 4));
        var name = abi.Alloc(16);
        Assert.Equal(Errno.Success, abi.Call("fd_prestat_dir_name", Root, name, 8));
        Assert.Equal("/sandbox", Encoding.UTF8.GetString(abi.Read(name, 8)));
        Assert.Equal(Errno.NameTooLong, abi.Call("fd_prestat_dir_name", Root, name, 3));
        Assert.Equal(Errno.BadF, abi.Call("fd_prestat_get", 4, p));
        Assert.Equal(Errno.BadF, abi.Call("fd_prestat_get", 1, p));
    }

    [Fact]
    public void Files_are_written_read_seeked_and_positioned()
    {
        var (e, fd) = abi.Open(Root, "f.txt", OFlags.Creat | OFlags.Excl);
        Assert.Equal(Errno.Success, e);
        Assert.Equal(4, fd);
        Assert.Equal(Errno.Exist, abi.Open(Root, "f.txt", OFlags.Creat | OFlags.Excl).Err);
        Assert.Equal(Errno.Success, abi.Write(fd, "hello, world"));
        Assert.Equal("hello, world", File.ReadAllText(dir["f.txt"]));

        var pos = abi.Alloc(8);
        Assert.Equal(Errno.Success, abi.Call("fd_tell", fd, pos));
        Assert.Equal(12ul, abi.U64(pos));
        Assert.Equal(Errno.Success, abi.Call("fd_seek", fd, 7L, 0, pos));
        Assert.Equal(7ul, abi.U64(pos));
        Assert.Equal((Errno.Success, "world"), abi.ReadText(fd, 100));
        Assert.Equal(Errno.Success, abi.Call("fd_seek", fd, -5L, 2, pos));
        Assert.Equal(7ul, abi.U64(pos));
        Assert.Equal(Errno.Inval, abi.Call("fd_seek", fd, 0L, 3, pos));
        Assert.Equal(Errno.Inval, abi.Call("fd_seek", fd, -100L, 1, pos));

        // pread/pwrite do not move the position.
        var buf = abi.Alloc(5);
        var n = abi.Alloc(4);
        Assert.Equal(Errno.Success, abi.Call("fd_pread", fd, abi.Iovec(buf, 5), 1, 0L, n));
        Assert.Equal("hello", Encoding.UTF8.GetString(abi.Read(buf, (int)abi.U32(n))));
        var data = abi.Bytes("HELLO"u8.ToArray());
        Assert.Equal(Errno.Success, abi.Call("fd_pwrite", fd, abi.Iovec(data, 5), 1, 0L, n));
        Assert.Equal(5u, abi.U32(n));
        Assert.Equal(Errno.Success, abi.Call("fd_tell", fd, pos));
        Assert.Equal(7ul, abi.U64(pos));
        Assert.Equal("HELLO, world", File.ReadAllText(dir["f.txt"]));

        // Scatter read over two buffers.
        Assert.Equal(Errno.Success, abi.Call("fd_seek", fd, 0L, 0, pos));
        var b1 = abi.Alloc(3);
        var b2 = abi.Alloc(20);
        var iov = abi.Alloc(16);
        abi.WriteU32(iov, (uint)b1);
        abi.WriteU32(iov + 4, 3);
        abi.WriteU32(iov + 8, (uint)b2);
        abi.WriteU32(iov + 12, 20);
        Assert.Equal(Errno.Success, abi.Call("fd_read", fd, iov, 2, n));
        Assert.Equal(12u, abi.U32(n));
        Assert.Equal("HEL", Encoding.UTF8.GetString(abi.Read(b1, 3)));
        Assert.Equal("LO, world", Encoding.UTF8.GetString(abi.Read(b2, 9)));

        // A bad iovec pointer is a fault, not a crash.
        Assert.Equal(Errno.Fault, abi.Call("fd_read", fd, (int)abi.Memory.Size - 4, 1, n));
        Assert.Equal(Errno.Success, abi.Call("fd_close", fd));
        Assert.Equal(Errno.BadF, abi.Call("fd_close", fd));
        Assert.Equal(Errno.BadF, abi.ReadText(fd, 4).Err);
    }

    [Fact]
    public void Filestat_fdstat_size_times_and_flags()
    {
        var (_, fd) = abi.Open(Root, "g.bin", OFlags.Creat, Rights.All);
        var st = abi.Alloc(64);
        Assert.Equal(Errno.Success, abi.Call("fd_filestat_set_size", fd, 1000L));
        Assert.Equal(Errno.Success, abi.Call("fd_filestat_get", fd, st));
        Assert.Equal((byte)FileType.RegularFile, abi.U8(st + 16));
        Assert.Equal(1000ul, abi.U64(st + 32));
        Assert.Equal(1ul, abi.U64(st + 24));
        Assert.Equal((ulong)new FileInfo(dir["g.bin"]).Length, abi.U64(st + 32));

        Assert.Equal(Errno.Success, abi.Call("fd_filestat_set_times", fd, 1_000_000_000_123L, 2_000_000_000_456L, 1 | 4));
        Assert.Equal(Errno.Success, abi.Call("fd_filestat_get", fd, st));
        Assert.Equal(1_000_000_000_123ul, abi.U64(st + 40));
        Assert.Equal(2_000_000_000_456ul, abi.U64(st + 48));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(2000).UtcDateTime, File.GetLastWriteTimeUtc(dir["g.bin"]).AddTicks(-4));
        Assert.Equal(Errno.Inval, abi.Call("fd_filestat_set_times", fd, 0L, 0L, 1 | 2));

        Assert.Equal(Errno.Success, abi.Call("fd_allocate", fd, 0L, 5000L));
        Assert.Equal(5000, new FileInfo(dir["g.bin"]).Length);
        Assert.Equal(Errno.Success, abi.Call("fd_advise", fd, 0L, 0L, 1));
        Assert.Equal(Errno.Inval, abi.Call("fd_advise", fd, 0L, 0L, 6));
        Assert.Equal(Errno.Success, abi.Call("fd_sync", fd));
        Assert.Equal(Errno.Success, abi.Call("fd_datasync", fd));

        var fs = abi.Alloc(24);
        Assert.Equal(Errno.Success, abi.Call("fd_fdstat_get", fd, fs));
        Assert.Equal((byte)FileType.RegularFile, abi.U8(fs));
        Assert.Equal(0, abi.U16(fs + 2));
        Assert.Equal((ulong)Rights.RegularFile, abi.U64(fs + 8));
        Assert.Equal(Errno.Success, abi.Call("fd_fdstat_set_flags", fd, (int)FdFlags.Append));
        Assert.Equal(Errno.Success, abi.Call("fd_fdstat_get", fd, fs));
        Assert.Equal((ushort)FdFlags.Append, abi.U16(fs + 2));
        Assert.Equal(Errno.Success, abi.Write(fd, "tail"));
        Assert.Equal(5004, new FileInfo(dir["g.bin"]).Length);
        Assert.Equal(Errno.NotSup, abi.Call("fd_fdstat_set_flags", fd, (int)FdFlags.Sync));

        // Rights only shrink, and a dropped right is enforced.
        Assert.Equal(Errno.Success, abi.Call("fd_fdstat_set_rights", fd, (long)(Rights.FdRead | Rights.FdSeek), 0L));
        Assert.Equal(Errno.NotCapable, abi.Write(fd, "x"));
        Assert.Equal(Errno.NotCapable, abi.Call("fd_fdstat_set_rights", fd, (long)Rights.All, 0L));

        // Stdio: a character device or pipe, not seekable.
        Assert.Equal(Errno.Success, abi.Call("fd_fdstat_get", 1, fs));
        Assert.Equal(0ul, abi.U64(fs + 8) & (ulong)Rights.FdSeek);
    }

    [Fact]
    public void Directories_are_created_listed_renamed_and_removed()
    {
        Assert.Equal(Errno.Success, abi.PathCall("path_create_directory", Root, "d"));
        Assert.Equal(Errno.Exist, abi.PathCall("path_create_directory", Root, "d"));
        Assert.True(Directory.Exists(dir["d"]));
        File.WriteAllText(dir["d/b"], "bb");
        File.WriteAllText(dir["d/a"], "a");
        Directory.CreateDirectory(dir["d/c"]);

        var (e, dfd) = abi.Open(Root, "d", OFlags.Directory, Rights.FdReaddir | Rights.PathOpen);
        Assert.Equal(Errno.Success, e);
        var entries = ReadDir(dfd, 4096, 0);
        Assert.Equal([".", "..", "a", "b", "c"], entries.Select(x => x.Name));
        Assert.Equal(FileType.Directory, entries.Single(x => x.Name == "c").Type);
        Assert.Equal(FileType.RegularFile, entries.Single(x => x.Name == "a").Type);
        Assert.Equal(3ul, entries.Single(x => x.Name == "a").Next);

        // Paging with a small buffer and cookies gives the same listing.
        var paged = new List<string>();
        ulong cookie = 0;
        while (true)
        {
            var page = ReadDir(dfd, 30, cookie);
            if (page.Count == 0) break;
            paged.Add(page[0].Name);
            cookie = page[0].Next;
        }
        Assert.Equal([".", "..", "a", "b", "c"], paged);

        Assert.Equal(Errno.NotDir, abi.Call("fd_readdir", 1, abi.Alloc(8), 8, 0L, abi.Alloc(4)));
        Assert.Equal(Errno.NotEmpty, abi.PathCall("path_remove_directory", Root, "d"));
        Assert.Equal(Errno.NotDir, abi.PathCall("path_remove_directory", Root, "d/a"));
        Assert.Equal(Errno.IsDir, abi.PathCall("path_unlink_file", Root, "d/c"));
        Assert.Equal(Errno.Success, abi.PathCall("path_unlink_file", Root, "d/a"));
        Assert.Equal(Errno.NoEnt, abi.PathCall("path_unlink_file", Root, "d/a"));
        Assert.Equal(Errno.Success, abi.PathCall("path_remove_directory", Root, "d/c"));

        var (o, ol) = abi.Str("d/b");
        var (n, nl) = abi.Str("moved");
        Assert.Equal(Errno.Success, abi.Call("path_rename", Root, o, ol, Root, n, nl));
        Assert.Equal("bb", File.ReadAllText(dir["moved"]));
        Assert.Equal(Errno.NoEnt, abi.Call("path_rename", Root, o, ol, Root, n, nl));
        Assert.Equal(Errno.NotDir, abi.Open(Root, "moved/x").Err);
        Assert.Equal(Errno.NoEnt, abi.Open(Root, "nope").Err);
        Assert.Equal(Errno.IsDir, abi.Open(Root, "d", OFlags.None, Rights.FdWrite).Err);
        Assert.Equal(Errno.NotDir, abi.Open(Root, "moved", OFlags.Directory, Rights.FdReaddir).Err);
    }

    private List<(string Name, FileType Type, ulong Next)> ReadDir(int fd, int size, ulong cookie)
    {
        var buf = abi.Alloc(size);
        var used = abi.Alloc(4);
        Assert.Equal(Errno.Success, abi.Call("fd_readdir", fd, buf, size, (long)cookie, used));
        var bytes = abi.Read(buf, (int)abi.U32(used));
        var list = new List<(string, FileType, ulong)>();
        for (var at = 0; at + 24 <= bytes.Length;)
        {
            var next = BitConverter.ToUInt64(bytes, at);
            var namlen = (int)BitConverter.ToUInt32(bytes, at + 16);
            var type = (FileType)bytes[at + 20];
            if (at + 24 + namlen > bytes.Length) break; // cut entry: the caller asks again from its cookie
            list.Add((Encoding.UTF8.GetString(bytes, at + 24, namlen), type, next));
            at += 24 + namlen;
        }
        return list;
    }

    [Fact]
    public void Symlinks_links_readlink_and_path_filestat()
    {
        File.WriteAllText(dir["target"], "T");
        var (t, tl) = abi.Str("target");
        var (l, ll) = abi.Str("link");
        Assert.Equal(Errno.Success, abi.Call("path_symlink", t, tl, Root, l, ll));
        var buf = abi.Alloc(64);
        var used = abi.Alloc(4);
        Assert.Equal(Errno.Success, abi.Call("path_readlink", Root, l, ll, buf, 64, used));
        Assert.Equal("target", Encoding.UTF8.GetString(abi.Read(buf, (int)abi.U32(used))));
        Assert.Equal(Errno.Success, abi.Call("path_readlink", Root, l, ll, buf, 3, used));
        Assert.Equal(3u, abi.U32(used));
        Assert.Equal(Errno.Inval, abi.Call("path_readlink", Root, t, tl, buf, 64, used));

        var st = abi.Alloc(64);
        Assert.Equal(Errno.Success, abi.Call("path_filestat_get", Root, 0, l, ll, st));
        Assert.Equal((byte)FileType.SymbolicLink, abi.U8(st + 16));
        Assert.Equal(Errno.Success, abi.Call("path_filestat_get", Root, 1, l, ll, st));
        Assert.Equal((byte)FileType.RegularFile, abi.U8(st + 16));
        Assert.Equal(1ul, abi.U64(st + 32));

        // Following a symlink in path_open, or refusing to.
        Assert.Equal(Errno.Success, abi.Open(Root, "link", follow: true).Err);
        Assert.Equal(Errno.Loop, abi.Open(Root, "link", follow: false).Err);

        var (h, hl) = abi.Str("hard");
        Assert.Equal(Errno.Success, abi.Call("path_link", Root, 0, t, tl, Root, h, hl));
        Assert.Equal(Errno.Success, abi.Call("path_filestat_get", Root, 0, t, tl, st));
        Assert.Equal(2ul, abi.U64(st + 24));
        Assert.Equal(Errno.Exist, abi.Call("path_link", Root, 0, t, tl, Root, h, hl));

        Assert.Equal(Errno.Success, abi.Call("path_filestat_set_times", Root, 1, t, tl, 5_000_000_000L, 6_000_000_000L, 1 | 4));
        Assert.Equal(Errno.Success, abi.Call("path_filestat_get", Root, 1, t, tl, st));
        Assert.Equal(6_000_000_000ul, abi.U64(st + 48));
        Assert.Equal(Errno.NoEnt, abi.PathCall("path_unlink_file", Root, "missing"));
        Assert.Equal(Errno.NoEnt, abi.Call("path_filestat_get", Root, 0, abi.Str("missing").Ptr, 7, st));
        Assert.Equal(Errno.NotDir, abi.Call("path_filestat_get", 1, 0, t, tl, st));
        Assert.Equal(Errno.BadF, abi.Call("path_filestat_get", 99, 0, t, tl, st));
    }

    [Fact]
    public void Renumber_moves_a_descriptor_over_another()
    {
        File.WriteAllText(dir["one"], "1");
        File.WriteAllText(dir["two"], "2");
        var (_, a) = abi.Open(Root, "one");
        var (_, b) = abi.Open(Root, "two");
        Assert.Equal(Errno.Success, abi.Call("fd_renumber", a, b));
        Assert.Equal((Errno.Success, "1"), abi.ReadText(b, 10));
        Assert.Equal(Errno.BadF, abi.ReadText(a, 10).Err);
        Assert.Equal(Errno.BadF, abi.Call("fd_renumber", a, b));
        // The freed number is reused by the next open.
        Assert.Equal(a, abi.Open(Root, "one").Fd);
    }

    [Fact]
    public void Poll_oneoff_clock_and_fd_subscriptions()
    {
        File.WriteAllText(dir["data"], "0123456789");
        var (_, fd) = abi.Open(Root, "data", OFlags.None, Rights.FdRead | Rights.PollFdReadwrite);
        var subs = abi.Alloc(48 * 2);
        var evs = abi.Alloc(32 * 2);
        var n = abi.Alloc(4);
        // A 1 ms relative clock and a readable file: the file is ready at once.
        abi.WriteU64(subs, 11);
        abi.Memory.Span((ulong)subs + 8, 1)[0] = 0;
        abi.WriteU32(subs + 16, 1);
        abi.WriteU64(subs + 24, 1_000_000);
        abi.WriteU64(subs + 48, 22);
        abi.Memory.Span((ulong)subs + 56, 1)[0] = 1;
        abi.WriteU32(subs + 64, (uint)fd);
        Assert.Equal(Errno.Success, abi.Call("poll_oneoff", subs, evs, 2, n));
        Assert.True(abi.U32(n) >= 1);
        var fileEvent = Enumerable.Range(0, (int)abi.U32(n)).Select(i => evs + 32 * i).Single(e => abi.U64(e) == 22);
        Assert.Equal(0, abi.U16(fileEvent + 8));
        Assert.Equal(1, abi.U8(fileEvent + 10));
        Assert.Equal(10ul, abi.U64(fileEvent + 16));

        // Only a clock: returns after the timeout with the clock's event.
        var t = abi.Alloc(8);
        abi.Call("clock_time_get", 1, 1L, t);
        var before = abi.U64(t);
        Assert.Equal(Errno.Success, abi.Call("poll_oneoff", subs, evs, 1, n));
        abi.Call("clock_time_get", 1, 1L, t);
        Assert.True(abi.U64(t) - before >= 1_000_000);
        Assert.Equal(1u, abi.U32(n));
        Assert.Equal(11ul, abi.U64(evs));
        Assert.Equal(0, abi.U8(evs + 10));

        // Bad descriptor: an event with BadF; unknown clock: Inval in the event.
        abi.WriteU32(subs + 64, 99);
        Assert.Equal(Errno.Success, abi.Call("poll_oneoff", subs + 48, evs, 1, n));
        Assert.Equal((ushort)Errno.BadF, abi.U16(evs + 8));
        abi.WriteU32(subs + 16, 77);
        Assert.Equal(Errno.Success, abi.Call("poll_oneoff", subs, evs, 1, n));
        Assert.Equal((ushort)Errno.Inval, abi.U16(evs + 8));
        Assert.Equal(Errno.Inval, abi.Call("poll_oneoff", subs, evs, 0, n));
    }

    [Fact]
    public void Proc_exit_unwinds_with_the_code_and_the_rest_is_unsupported_or_trivial()
    {
        var ex = Assert.Throws<WasiExitException>(() => abi.Call("proc_exit", 42));
        Assert.Equal(42, ex.Code);
        Assert.Equal(Errno.NoSys, abi.Call("proc_raise", 6));
        Assert.Equal(Errno.Success, abi.Call("sched_yield"));
        Assert.Equal(Errno.NoSys, abi.Call("sock_accept", 3, 0, abi.Alloc(4)));
        Assert.Equal(Errno.NoSys, abi.Call("sock_recv", 1, 0, 0, 0, abi.Alloc(4), abi.Alloc(4)));
        Assert.Equal(Errno.NoSys, abi.Call("sock_send", 1, 0, 0, 0, abi.Alloc(4)));
        Assert.Equal(Errno.NoSys, abi.Call("sock_shutdown", 1, 0));
        Assert.Equal(Errno.BadF, abi.Call("sock_shutdown", 77, 0));
    }

    [Fact]
    public void Stdout_and_stderr_reach_their_streams()
    {
        Assert.Equal(Errno.Success, abi.Write(1, "out"));
        Assert.Equal(Errno.Success, abi.Write(2, "err"));
        abi.Context.FlushOutput();
        Assert.Equal("out", abi.Out);
        Assert.Equal("err", abi.Err);
        Assert.Equal(Errno.NotCapable, abi.ReadText(1, 4).Err);
        Assert.Equal(Errno.SPipe, abi.Call("fd_seek", 1, 0L, 0, abi.Alloc(8)));
    }
}
