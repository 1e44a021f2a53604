using System.Text;
using System.Text.Json;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>WASI state captured as plain data and restored in a fresh context (as a new process would).</summary>
public sealed class CaptureRestoreTests : IDisposable
{
    private readonly TempDir dir = new();
    private const int Root = 3;

    public void Dispose() => dir.Dispose();

    private WasiOptions Options => new()
    {
        Args = ["prog", "x"],
        Env = ["K=V"],
        Preopens = [new WasiPreopen(dir.Path, "/data")],
    };

    [Fact]
    public void Open_files_positions_flags_and_clock_survive_a_capture_and_restore()
    {
        File.WriteAllText(dir["data.txt"], "0123456789abcdef");
        Directory.CreateDirectory(dir["sub"]);
        File.WriteAllText(dir["sub/log"], "");
        WasiState state;
        int dataFd, logFd, subFd;
        ulong clockAtCapture;
        using (var abi = new Abi(Options))
        {
            (_, dataFd) = abi.Open(Root, "data.txt");
            Assert.Equal((Errno.Success, "0123"), abi.ReadText(dataFd, 4));
            (_, logFd) = abi.Open(Root, "sub/./log", OFlags.None, Rights.FdWrite, FdFlags.Append);
            Assert.Equal(Errno.Success, abi.Write(logFd, "one;"));
            (_, subFd) = abi.Open(Root, "sub", OFlags.Directory, Rights.FdReaddir | Rights.PathOpen);
            Assert.Equal(Errno.Success, abi.Call("fd_close", 1)); // the guest closed its stdout
            var t = abi.Alloc(8);
            abi.Call("clock_time_get", 1, 1L, t);
            state = abi.Context.Capture();
            clockAtCapture = abi.U64(t);
        }

        Assert.Equal(["prog", "x"], state.Args);
        Assert.Equal(["K=V"], state.Env);
        Assert.Equal(new WasiPreopenState("/data", dir.Path), Assert.Single(state.Preopens));
        Assert.DoesNotContain(state.Fds, f => f.Fd == 1);
        var data = state.Fds.Single(f => f.Fd == dataFd);
        Assert.Equal(WasiFdKind.File, data.Kind);
        Assert.Equal("data.txt", data.GuestPath);
        Assert.Equal(dir["data.txt"], data.HostPath);
        Assert.Equal(4, data.Position);
        Assert.True(data.Read);
        var log = state.Fds.Single(f => f.Fd == logFd);
        Assert.Equal("sub/log", log.GuestPath);
        Assert.Equal(FdFlags.Append, log.Flags);
        Assert.True(log.Write);
        Assert.False(log.Read);
        Assert.Equal(WasiFdKind.Directory, state.Fds.Single(f => f.Fd == subFd).Kind);
        Assert.Equal(WasiFdKind.Preopen, state.Fds.Single(f => f.Fd == Root).Kind);
        Assert.True(state.MonotonicNanos >= (long)clockAtCapture);

        // Plain data: it survives JSON (what a snapshot file or the wire would carry).
        var json = JsonSerializer.Serialize(state);
        var back = JsonSerializer.Deserialize<WasiState>(json)!;

        using var restored = new Abi(captured => WasiContext.Restore(back, captured(Options)));
        Assert.Equal((Errno.Success, "4567"), restored.ReadText(dataFd, 4));
        Assert.Equal(Errno.Success, restored.Write(logFd, "two;"));
        Assert.Equal("one;two;", File.ReadAllText(dir["sub/log"]));
        var fs = restored.Alloc(24);
        Assert.Equal(Errno.Success, restored.Call("fd_fdstat_get", logFd, fs));
        Assert.Equal((ushort)FdFlags.Append, restored.U16(fs + 2));
        Assert.Equal(Errno.BadF, restored.Call("fd_fdstat_get", 1, fs));
        var t2 = restored.Alloc(8);
        restored.Call("clock_time_get", 1, 1L, t2);
        Assert.True(restored.U64(t2) >= (ulong)state.MonotonicNanos, "the guest's monotonic clock went backwards");
        Assert.Equal(state.MonotonicNanos, restored.Context.MonotonicOffset);
        // The next open takes the lowest free number, as before the capture.
        Assert.Equal(1, restored.Open(Root, "data.txt").Fd);
    }

    [Fact]
    public void A_paged_directory_listing_continues_after_restore()
    {
        foreach (var n in new[] { "a", "b", "c", "d" }) File.WriteAllText(dir[n], n);
        WasiState state;
        int fd;
        using (var abi = new Abi(Options))
        {
            (_, fd) = abi.Open(Root, ".", OFlags.Directory, Rights.FdReaddir);
            var buf = abi.Alloc(64);
            Assert.Equal(Errno.Success, abi.Call("fd_readdir", fd, buf, 40, 0L, abi.Alloc(4)));
            state = abi.Context.Capture();
        }
        Assert.Equal([".", "..", "a", "b", "c", "d"], state.Fds.Single(f => f.Fd == fd).DirEntries.Select(e => e.Name));
        File.WriteAllText(dir["0-new"], "appears after the capture");
        using var restored = new Abi(captured => WasiContext.Restore(state, captured(Options)));
        var b = restored.Alloc(256);
        var used = restored.Alloc(4);
        Assert.Equal(Errno.Success, restored.Call("fd_readdir", fd, b, 256, 4L, used));
        var bytes = restored.Read(b, (int)restored.U32(used));
        Assert.Equal("c", Encoding.UTF8.GetString(bytes, 24, 1));
        Assert.Equal("d", Encoding.UTF8.GetString(bytes, 24 + 25, 1));
        Assert.Equal(50, bytes.Length);
    }

    [Fact]
    public void Restore_refuses_a_vanished_file_and_a_moved_preopen()
    {
        File.WriteAllText(dir["gone"], "x");
        WasiState state;
        using (var abi = new Abi(Options))
        {
            abi.Open(Root, "gone");
            state = abi.Context.Capture();
        }
        using var other = new TempDir();
        var moved = Assert.Throws<WasiRestoreException>(() =>
            WasiContext.Restore(state, Options with { Preopens = [new WasiPreopen(other.Path, "/data")] }));
        Assert.Contains("/data", moved.Message);
        var missing = Assert.Throws<WasiRestoreException>(() =>
            WasiContext.Restore(state, Options with { Preopens = [new WasiPreopen(other.Path, "/elsewhere")] }));
        Assert.Contains("not configured", missing.Message);

        File.Delete(dir["gone"]);
        var vanished = Assert.Throws<WasiRestoreException>(() => WasiContext.Restore(state, Options with { Preopens = [] }));
        Assert.Contains("gone", vanished.Message);
        Assert.Contains("no longer exists", vanished.Message);
    }

    [Fact]
    public void Persisted_enum_values_are_stable()
    {
        Assert.Equal(0, (int)WasiFdKind.Stdio);
        Assert.Equal(1, (int)WasiFdKind.File);
        Assert.Equal(2, (int)WasiFdKind.Directory);
        Assert.Equal(3, (int)WasiFdKind.Preopen);
        Assert.Equal(4, Enum.GetValues<WasiFdKind>().Length);
        Assert.Equal(1ul << 29, (ulong)Rights.SockAccept);
        Assert.Equal(16, (int)FdFlags.Sync);
        Assert.Equal(7, (int)FileType.SymbolicLink);
    }
}
