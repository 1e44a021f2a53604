using System.Runtime.CompilerServices;
using System.Text;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>
/// A module that imports every preview1 function and re-exports it, with one exported memory, so tests can call
/// each function at the ABI level (raw pointers, exact errno values) — what a C library would see.
/// </summary>
public sealed unsafe class Abi : IDisposable
{
    public static readonly (string Name, string Sig)[] Functions =
    [
        ("args_get", "(param i32 i32) (result i32)"),
        ("args_sizes_get", "(param i32 i32) (result i32)"),
        ("environ_get", "(param i32 i32) (result i32)"),
        ("environ_sizes_get", "(param i32 i32) (result i32)"),
        ("clock_res_get", "(param i32 i32) (result i32)"),
        ("clock_time_get", "(param i32 i64 i32) (result i32)"),
        ("fd_advise", "(param i32 i64 i64 i32) (result i32)"),
        ("fd_allocate", "(param i32 i64 i64) (result i32)"),
        ("fd_close", "(param i32) (result i32)"),
        ("fd_datasync", "(param i32) (result i32)"),
        ("fd_fdstat_get", "(param i32 i32) (result i32)"),
        ("fd_fdstat_set_flags", "(param i32 i32) (result i32)"),
        ("fd_fdstat_set_rights", "(param i32 i64 i64) (result i32)"),
        ("fd_filestat_get", "(param i32 i32) (result i32)"),
        ("fd_filestat_set_size", "(param i32 i64) (result i32)"),
        ("fd_filestat_set_times", "(param i32 i64 i64 i32) (result i32)"),
        ("fd_pread", "(param i32 i32 i32 i64 i32) (result i32)"),
        ("fd_prestat_get", "(param i32 i32) (result i32)"),
        ("fd_prestat_dir_name", "(param i32 i32 i32) (result i32)"),
        ("fd_pwrite", "(param i32 i32 i32 i64 i32) (result i32)"),
        ("fd_read", "(param i32 i32 i32 i32) (result i32)"),
        ("fd_readdir", "(param i32 i32 i32 i64 i32) (result i32)"),
        ("fd_renumber", "(param i32 i32) (result i32)"),
        ("fd_seek", "(param i32 i64 i32 i32) (result i32)"),
        ("fd_sync", "(param i32) (result i32)"),
        ("fd_tell", "(param i32 i32) (result i32)"),
        ("fd_write", "(param i32 i32 i32 i32) (result i32)"),
        ("path_create_directory", "(param i32 i32 i32) (result i32)"),
        ("path_filestat_get", "(param i32 i32 i32 i32 i32) (result i32)"),
        ("path_filestat_set_times", "(param i32 i32 i32 i32 i64 i64 i32) (result i32)"),
        ("path_link", "(param i32 i32 i32 i32 i32 i32 i32) (result i32)"),
        ("path_open", "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)"),
        ("path_readlink", "(param i32 i32 i32 i32 i32 i32) (result i32)"),
        ("path_remove_directory", "(param i32 i32 i32) (result i32)"),
        ("path_rename", "(param i32 i32 i32 i32 i32 i32) (result i32)"),
        ("path_symlink", "(param i32 i32 i32 i32 i32) (result i32)"),
        ("path_unlink_file", "(param i32 i32 i32) (result i32)"),
        ("poll_oneoff", "(param i32 i32 i32 i32) (result i32)"),
        ("proc_exit", "(param i32)"),
        ("proc_raise", "(param i32) (result i32)"),
        ("sched_yield", "(result i32)"),
        ("random_get", "(param i32 i32) (result i32)"),
        ("sock_accept", "(param i32 i32 i32) (result i32)"),
        ("sock_recv", "(param i32 i32 i32 i32 i32 i32) (result i32)"),
        ("sock_send", "(param i32 i32 i32 i32 i32) (result i32)"),
        ("sock_shutdown", "(param i32 i32) (result i32)"),
    ];

    public static string ModuleText
    {
        get
        {
            var sb = new StringBuilder("(module\n");
            foreach (var (name, sig) in Functions)
            {
                sb.Append($"  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} {sig}))\n");
            }
            foreach (var (name, _) in Functions) sb.Append($"  (export \"{name}\" (func ${name}))\n");
            sb.Append("  (memory (export \"memory\") 2))\n");
            return sb.ToString();
        }
    }

    private readonly WasiRun run;
    private int heap = 1024;

    public Abi(WasiOptions options) => run = new WasiRun(Env.Wat(ModuleText), options);

    /// <summary>An instance over a context made by <paramref name="makeContext"/> (given this run's captured stdio options).</summary>
    public Abi(Func<Func<WasiOptions, WasiOptions>, WasiContext> makeContext) =>
        run = new WasiRun(Env.Compile(Env.Wat(ModuleText)), r => makeContext(r.Captured));

    public WasiContext Context => run.Context;
    public WasiHost Host => run.Host;
    public Instance Instance => run.Instance;
    public string Out => run.Out;
    public string Err => run.Err;
    public LinearMemory Memory => Instance.Memory!;

    /// <summary>Calls a WASI function and returns its errno.</summary>
    public Errno Call(string name, params object[] args)
    {
        var values = new WasmValue[args.Length];
        for (var i = 0; i < args.Length; i++)
        {
            values[i] = args[i] switch
            {
                int v => WasmValue.FromI32(v),
                uint v => WasmValue.FromI32((int)v),
                long v => WasmValue.FromI64(v),
                ulong v => WasmValue.FromI64((long)v),
                Rights v => WasmValue.FromI64((long)v),
                Errno v => WasmValue.FromI32((int)v),
                _ => throw new ArgumentException($"unsupported argument {args[i]}"),
            };
        }
        var r = Instance.Invoke(name, values);
        return r.Length == 0 ? Errno.Success : (Errno)r[0].I32;
    }

    /// <summary>Allocates guest memory (bump allocator over the module's 2 pages).</summary>
    public int Alloc(int size)
    {
        var at = (heap + 7) & ~7;
        heap = at + size;
        if (heap > (int)Memory.Size) throw new InvalidOperationException("test heap exhausted");
        return at;
    }

    /// <summary>Places a string (UTF-8, no NUL) in guest memory: returns (ptr, len).</summary>
    public (int Ptr, int Len) Str(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        var p = Alloc(Math.Max(1, bytes.Length));
        bytes.CopyTo(Memory.Span((ulong)p, bytes.Length));
        return (p, bytes.Length);
    }

    public int Bytes(byte[] data)
    {
        var p = Alloc(Math.Max(1, data.Length));
        data.CopyTo(Memory.Span((ulong)p, data.Length));
        return p;
    }

    public uint U32(int ptr) => Unsafe.ReadUnaligned<uint>(ref Memory.Span((ulong)ptr, 4)[0]);
    public ulong U64(int ptr) => Unsafe.ReadUnaligned<ulong>(ref Memory.Span((ulong)ptr, 8)[0]);
    public byte U8(int ptr) => Memory.Span((ulong)ptr, 1)[0];
    public ushort U16(int ptr) => Unsafe.ReadUnaligned<ushort>(ref Memory.Span((ulong)ptr, 2)[0]);
    public byte[] Read(int ptr, int len) => Memory.Span((ulong)ptr, len).ToArray();
    public void WriteU32(int ptr, uint v) => Unsafe.WriteUnaligned(ref Memory.Span((ulong)ptr, 4)[0], v);
    public void WriteU64(int ptr, ulong v) => Unsafe.WriteUnaligned(ref Memory.Span((ulong)ptr, 8)[0], v);

    /// <summary>An iovec array of one buffer: returns the iovec pointer.</summary>
    public int Iovec(int buf, int len)
    {
        var v = Alloc(8);
        WriteU32(v, (uint)buf);
        WriteU32(v + 4, (uint)len);
        return v;
    }

    /// <summary>path_open relative to <paramref name="dirFd"/>; returns (errno, fd).</summary>
    public (Errno Err, int Fd) Open(int dirFd, string path, OFlags oflags = OFlags.None, Rights rights = Rights.FdRead | Rights.FdWrite | Rights.FdSeek | Rights.FdTell | Rights.FdFilestatGet | Rights.FdReaddir | Rights.FdFilestatSetSize, FdFlags fdflags = FdFlags.None, bool follow = true)
    {
        var (p, l) = Str(path);
        var fdOut = Alloc(4);
        var e = Call("path_open", dirFd, follow ? 1 : 0, p, l, (int)oflags, rights, Rights.All, (int)fdflags, fdOut);
        return (e, e == Errno.Success ? (int)U32(fdOut) : -1);
    }

    public Errno Write(int fd, string text)
    {
        var buf = Bytes(Encoding.UTF8.GetBytes(text));
        var n = Alloc(4);
        var e = Call("fd_write", fd, Iovec(buf, Encoding.UTF8.GetByteCount(text)), 1, n);
        if (e == Errno.Success) Assert.Equal((uint)Encoding.UTF8.GetByteCount(text), U32(n));
        return e;
    }

    public (Errno Err, string Text) ReadText(int fd, int max)
    {
        var buf = Alloc(max);
        var n = Alloc(4);
        var e = Call("fd_read", fd, Iovec(buf, max), 1, n);
        return (e, e == Errno.Success ? Encoding.UTF8.GetString(Read(buf, (int)U32(n))) : "");
    }

    public Errno PathCall(string name, int fd, string path)
    {
        var (p, l) = Str(path);
        return Call(name, fd, p, l);
    }

    public void Dispose() => run.Dispose();
}
