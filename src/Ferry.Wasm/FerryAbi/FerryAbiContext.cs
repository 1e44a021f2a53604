using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Ferry.Wasm.FerryAbi;

/// <summary>How a program on the <c>ferry</c> host ABI is started: its arguments and where its output goes.</summary>
public sealed record FerryAbiOptions
{
    /// <summary>argv, including argv[0] (by convention the program's name).</summary>
    public IReadOnlyList<string> Args { get; init; } = [];
    /// <summary>Where fd 1 goes (default: this process's stdout).</summary>
    public Stream? Stdout { get; init; }
    /// <summary>Where fd 2 goes (default: this process's stderr).</summary>
    public Stream? Stderr { get; init; }
}

/// <summary>What a <c>ferry</c>-ABI program carries across a checkpoint: its arguments and its clock.</summary>
public sealed record FerryAbiState(IReadOnlyList<string> Args, long MonotonicNanos)
{
    /// <summary>"FABI": distinguishes this encoding from WASI's in a snapshot's environment record.</summary>
    public static ReadOnlySpan<byte> Magic => "FABI"u8;

    public const byte Version = 1;

    /// <summary>Magic, version, clock (i64), argument count (i32), then each argument as length (i32) + UTF-8.</summary>
    public byte[] Encode()
    {
        using var ms = new MemoryStream();
        ms.Write(Magic);
        ms.WriteByte(Version);
        Span<byte> n = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(n, MonotonicNanos);
        ms.Write(n);
        BinaryPrimitives.WriteInt32LittleEndian(n, Args.Count);
        ms.Write(n[..4]);
        foreach (var a in Args)
        {
            var bytes = Encoding.UTF8.GetBytes(a);
            BinaryPrimitives.WriteInt32LittleEndian(n, bytes.Length);
            ms.Write(n[..4]);
            ms.Write(bytes);
        }
        return ms.ToArray();
    }

    public static bool IsEncoded(ReadOnlySpan<byte> state) => state.StartsWith(Magic);

    public static FerryAbiState Decode(ReadOnlySpan<byte> state)
    {
        if (!IsEncoded(state)) throw new FerryAbiException("not a ferry-ABI environment state");
        var r = state[Magic.Length..];
        if (r.Length < 13) throw new FerryAbiException("ferry-ABI environment state is truncated");
        if (r[0] != Version) throw new FerryAbiException($"ferry-ABI environment state version {r[0]} is not supported (this Ferry reads {Version})");
        var clock = BinaryPrimitives.ReadInt64LittleEndian(r[1..]);
        var count = BinaryPrimitives.ReadInt32LittleEndian(r[9..]);
        r = r[13..];
        if (count < 0 || count > r.Length / 4) throw new FerryAbiException($"ferry-ABI environment state: bad argument count {count}");
        var args = new string[count];
        for (var i = 0; i < count; i++)
        {
            if (r.Length < 4) throw new FerryAbiException("ferry-ABI environment state is truncated");
            var len = BinaryPrimitives.ReadInt32LittleEndian(r);
            if (len < 0 || len > r.Length - 4) throw new FerryAbiException("ferry-ABI environment state is truncated");
            args[i] = Encoding.UTF8.GetString(r.Slice(4, len));
            r = r[(4 + len)..];
        }
        if (!r.IsEmpty) throw new FerryAbiException("ferry-ABI environment state has trailing bytes");
        return new FerryAbiState(args, clock);
    }
}

/// <summary>A <c>ferry</c>-ABI environment state or call could not be honoured.</summary>
public sealed class FerryAbiException(string message) : WasmException(message);

/// <summary>Thrown by the ABI's <c>exit</c>: unwinds the guest to the host, which ends the program with <see cref="Code"/>.</summary>
public sealed class FerryAbiExitException(int code) : WasmException($"the program exited with code {code}")
{
    public int Code { get; } = code;
}

/// <summary>
/// The host side of one program on the <c>ferry</c> ABI (docs/workloads.md): arguments, buffered stdout,
/// stderr, and a monotonic clock that continues across checkpoint and restore.
/// </summary>
public sealed class FerryAbiContext : IDisposable
{
    private readonly Stream stdout;
    private readonly Stream stderr;
    private readonly bool ownsStreams;
    private long monotonicBase = Stopwatch.GetTimestamp();
    private long monotonicOffset;

    public FerryAbiContext(FerryAbiOptions options)
    {
        Args = [.. options.Args];
        ownsStreams = options.Stdout is null;
        // fd 1 is buffered (a progress line per write would otherwise be a syscall each); fd 2 is written through.
        stdout = new BufferedStream(options.Stdout ?? HostFd(1), 64 * 1024);
        stderr = options.Stderr ?? HostFd(2);
    }

    private static FileStream HostFd(int fd) => new(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, bufferSize: 0);

    public IReadOnlyList<string> Args { get; }

    /// <summary>The running instance (for freeze-aware waits); set by <see cref="FerryAbiHost.Bind"/>.</summary>
    public Runtime.InstanceBase? Guest { get; internal set; }

    public long MonotonicNanos => (long)((Stopwatch.GetTimestamp() - monotonicBase) * (1_000_000_000.0 / Stopwatch.Frequency)) + monotonicOffset;

    internal Stream Output(int fd) => fd == 1 ? stdout : stderr;

    public void FlushOutput()
    {
        stdout.Flush();
        stderr.Flush();
    }

    /// <summary>The state to carry (output is flushed first: it has been produced).</summary>
    public FerryAbiState Capture()
    {
        FlushOutput();
        return new FerryAbiState(Args, MonotonicNanos);
    }

    public static FerryAbiContext Restore(FerryAbiState state, FerryAbiOptions stdio)
    {
        var context = new FerryAbiContext(stdio with { Args = state.Args });
        context.monotonicOffset = state.MonotonicNanos;
        context.monotonicBase = Stopwatch.GetTimestamp();
        return context;
    }

    public void Dispose()
    {
        try
        {
            FlushOutput();
        }
        catch (IOException)
        {
            // The reader went away (a closed pipe): nothing left to deliver to.
        }
        if (ownsStreams) stdout.Dispose();
    }
}
