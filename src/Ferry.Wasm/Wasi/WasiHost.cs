using System.Runtime.CompilerServices;
using System.Text;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Wasi;

/// <summary>
/// The <c>wasi_snapshot_preview1</c> functions over a <see cref="WasiContext"/>. <see cref="Define"/> registers all
/// 46 into a <see cref="Linker"/>; after instantiation <see cref="Bind"/> attaches the instance, whose exported
/// <c>memory</c> the functions read and write. One file per area (Args, Clock, Fd, Path, Poll, Proc, Random, Sock).
/// Guest pointers are u32 offsets; every access is bounds-checked against the memory's current size and a bad
/// pointer yields <see cref="Errno.Fault"/>.
/// </summary>
public sealed unsafe partial class WasiHost
{
    private LinearMemory? memory;

    private WasiHost(WasiContext context) => Context = context;

    public WasiContext Context { get; }
    public Instance? Instance { get; private set; }

    /// <summary>Registers every WASI function under <c>wasi_snapshot_preview1</c> and returns the host to bind later.</summary>
    public static WasiHost Define(Linker linker, WasiContext context)
    {
        ArgumentNullException.ThrowIfNull(linker);
        ArgumentNullException.ThrowIfNull(context);
        var host = new WasiHost(context);
        host.Register(linker);
        return host;
    }

    /// <summary>Attaches the instance whose memory the functions use (its export "memory", else its memory 0).</summary>
    public void Bind(Instance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        memory = instance.Exports.TryGetValue("memory", out var m) && m is LinearMemory lm ? lm : instance.Memory
            ?? throw new LinkException("a WASI module must export its memory as \"memory\"");
        Instance = instance;
        Context.Guest = instance.State;
    }

    /// <summary>True when the module imports anything from <c>wasi_snapshot_preview1</c> (or the older <c>wasi_unstable</c>).</summary>
    public static bool IsWasiModule(Module module) =>
        module.Imports.Any(i => i.Module == WasiAbi.ModuleName);

    /// <summary>
    /// Runs the command's <c>_start</c> and returns its exit status: 0 when it returns, the proc_exit code otherwise.
    /// Output is flushed in every case (also when it traps).
    /// </summary>
    public int RunStart()
    {
        var instance = Instance ?? throw new InvalidOperationException("Bind the instance first");
        if (!instance.Exports.TryGetValue("_start", out var s) || s is not FuncRef start)
        {
            throw new LinkException("the module has no _start export");
        }
        try
        {
            Instance.Invoke(start);
            return 0;
        }
        catch (WasiExitException e)
        {
            return e.Code;
        }
        finally
        {
            Context.FlushOutput();
        }
    }

    // ---- memory access ----------------------------------------------------------------------------------------

    private LinearMemory Mem => memory ?? throw new InvalidOperationException("WASI function called before WasiHost.Bind");

    /// <summary>A pointer to [offset, offset+length) of guest memory, or null when out of bounds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* Ptr(int offset, long length)
    {
        var m = Mem;
        var end = (ulong)(uint)offset + (ulong)length;
        if (length < 0 || end > m.Size) return null;
        // During post-copy the bytes may still be on the source: wait for them (see LinearMemory.Presence).
        if (length > 0 && m.Presence is { } presence) presence.EnsurePresent((uint)offset, (ulong)length);
        return m.Base + (uint)offset;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryWriteU32(int offset, uint value)
    {
        var p = Ptr(offset, 4);
        if (p == null) return false;
        Unsafe.WriteUnaligned(p, value);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryWriteU64(int offset, ulong value)
    {
        var p = Ptr(offset, 8);
        if (p == null) return false;
        Unsafe.WriteUnaligned(p, value);
        return true;
    }

    /// <summary>Reads a guest path as a NUL-terminated UTF-8 buffer; errors: Fault (bounds), Inval (NUL inside), NoEnt (empty).</summary>
    private Errno ReadPath(int ptr, int len, out byte[] path)
    {
        path = [];
        var p = Ptr(ptr, (uint)len);
        if (p == null) return Errno.Fault;
        var span = new ReadOnlySpan<byte>(p, len);
        if (span.IndexOf((byte)0) >= 0) return Errno.IlSeq;
        if (len == 0) return Errno.NoEnt;
        path = new byte[len + 1];
        span.CopyTo(path);
        return Errno.Success;
    }

    private static int Ok => (int)Errno.Success;

    private static int Fail(Errno e) => (int)e;

    private static int LinuxError() => (int)ErrnoMapping.FromLinux(Sys.Errno);

    private static string Text(ReadOnlySpan<byte> utf8) => Encoding.UTF8.GetString(utf8);

    // ---- registration -----------------------------------------------------------------------------------------

    private static readonly Wasm.ValueType I = Wasm.ValueType.I32, L = Wasm.ValueType.I64;

    private readonly List<string> registered = [];

    /// <summary>The names of the functions <see cref="Define"/> registered (all 46 of preview1).</summary>
    public IReadOnlyList<string> FunctionNames => registered;

    private void Def(Linker linker, string name, Wasm.ValueType[] parameters, bool hasResult, Delegate implementation)
    {
        linker.DefineFunction(WasiAbi.ModuleName, name, new FuncType(parameters, hasResult ? [I] : []), implementation);
        registered.Add(name);
    }

    private void Register(Linker k)
    {
        // Args.cs
        Def(k, "args_get", [I, I], true, new Func<int, int, int>(ArgsGet));
        Def(k, "args_sizes_get", [I, I], true, new Func<int, int, int>(ArgsSizesGet));
        Def(k, "environ_get", [I, I], true, new Func<int, int, int>(EnvironGet));
        Def(k, "environ_sizes_get", [I, I], true, new Func<int, int, int>(EnvironSizesGet));
        // Clock.cs
        Def(k, "clock_res_get", [I, I], true, new Func<int, int, int>(ClockResGet));
        Def(k, "clock_time_get", [I, L, I], true, new Func<int, long, int, int>(ClockTimeGet));
        // Fd.cs
        Def(k, "fd_advise", [I, L, L, I], true, new Func<int, long, long, int, int>(FdAdvise));
        Def(k, "fd_allocate", [I, L, L], true, new Func<int, long, long, int>(FdAllocate));
        Def(k, "fd_close", [I], true, new Func<int, int>(FdClose));
        Def(k, "fd_datasync", [I], true, new Func<int, int>(FdDatasync));
        Def(k, "fd_fdstat_get", [I, I], true, new Func<int, int, int>(FdFdstatGet));
        Def(k, "fd_fdstat_set_flags", [I, I], true, new Func<int, int, int>(FdFdstatSetFlags));
        Def(k, "fd_fdstat_set_rights", [I, L, L], true, new Func<int, long, long, int>(FdFdstatSetRights));
        Def(k, "fd_filestat_get", [I, I], true, new Func<int, int, int>(FdFilestatGet));
        Def(k, "fd_filestat_set_size", [I, L], true, new Func<int, long, int>(FdFilestatSetSize));
        Def(k, "fd_filestat_set_times", [I, L, L, I], true, new Func<int, long, long, int, int>(FdFilestatSetTimes));
        Def(k, "fd_pread", [I, I, I, L, I], true, new Func<int, int, int, long, int, int>(FdPread));
        Def(k, "fd_prestat_get", [I, I], true, new Func<int, int, int>(FdPrestatGet));
        Def(k, "fd_prestat_dir_name", [I, I, I], true, new Func<int, int, int, int>(FdPrestatDirName));
        Def(k, "fd_pwrite", [I, I, I, L, I], true, new Func<int, int, int, long, int, int>(FdPwrite));
        Def(k, "fd_read", [I, I, I, I], true, new Func<int, int, int, int, int>(FdRead));
        Def(k, "fd_readdir", [I, I, I, L, I], true, new Func<int, int, int, long, int, int>(FdReaddir));
        Def(k, "fd_renumber", [I, I], true, new Func<int, int, int>(FdRenumber));
        Def(k, "fd_seek", [I, L, I, I], true, new Func<int, long, int, int, int>(FdSeek));
        Def(k, "fd_sync", [I], true, new Func<int, int>(FdSync));
        Def(k, "fd_tell", [I, I], true, new Func<int, int, int>(FdTell));
        Def(k, "fd_write", [I, I, I, I], true, new Func<int, int, int, int, int>(FdWrite));
        // Path.cs
        Def(k, "path_create_directory", [I, I, I], true, new Func<int, int, int, int>(PathCreateDirectory));
        Def(k, "path_filestat_get", [I, I, I, I, I], true, new Func<int, int, int, int, int, int>(PathFilestatGet));
        Def(k, "path_filestat_set_times", [I, I, I, I, L, L, I], true, new Func<int, int, int, int, long, long, int, int>(PathFilestatSetTimes));
        Def(k, "path_link", [I, I, I, I, I, I, I], true, new Func<int, int, int, int, int, int, int, int>(PathLink));
        Def(k, "path_open", [I, I, I, I, I, L, L, I, I], true, new Func<int, int, int, int, int, long, long, int, int, int>(PathOpen));
        Def(k, "path_readlink", [I, I, I, I, I, I], true, new Func<int, int, int, int, int, int, int>(PathReadlink));
        Def(k, "path_remove_directory", [I, I, I], true, new Func<int, int, int, int>(PathRemoveDirectory));
        Def(k, "path_rename", [I, I, I, I, I, I], true, new Func<int, int, int, int, int, int, int>(PathRename));
        Def(k, "path_symlink", [I, I, I, I, I], true, new Func<int, int, int, int, int, int>(PathSymlink));
        Def(k, "path_unlink_file", [I, I, I], true, new Func<int, int, int, int>(PathUnlinkFile));
        // Poll.cs
        Def(k, "poll_oneoff", [I, I, I, I], true, new Func<int, int, int, int, int>(PollOneoff));
        // Proc.cs
        Def(k, "proc_exit", [I], false, new Action<int>(ProcExit));
        Def(k, "proc_raise", [I], true, new Func<int, int>(ProcRaise));
        Def(k, "sched_yield", [], true, new Func<int>(SchedYield));
        // Random.cs
        Def(k, "random_get", [I, I], true, new Func<int, int, int>(RandomGet));
        // Sock.cs
        Def(k, "sock_accept", [I, I, I], true, new Func<int, int, int, int>(SockAccept));
        Def(k, "sock_recv", [I, I, I, I, I, I], true, new Func<int, int, int, int, int, int, int>(SockRecv));
        Def(k, "sock_send", [I, I, I, I, I], true, new Func<int, int, int, int, int, int>(SockSend));
        Def(k, "sock_shutdown", [I, I], true, new Func<int, int, int>(SockShutdown));
    }
}
