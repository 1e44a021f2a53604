using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.FerryAbi;

/// <summary>
/// The <c>ferry</c> host ABI: six functions for freestanding programs that need no libc and no WASI — in
/// particular memory64 modules, for which no WASI exists yet (the wasm64 microbenchmark, footprints above
/// 4 GiB). Pointers and lengths are i64 addresses into the module's memory. Contract: docs/workloads.md.
/// </summary>
public sealed unsafe class FerryAbiHost
{
    public const string ModuleName = "ferry";

    private LinearMemory? memory;

    private FerryAbiHost(FerryAbiContext context) => Context = context;

    public FerryAbiContext Context { get; }

    public Instance? Instance { get; private set; }

    /// <summary>True when the module imports anything from <c>ferry</c>.</summary>
    public static bool IsFerryAbiModule(Module module) => module.Imports.Any(i => i.Module == ModuleName);

    public static FerryAbiHost Define(Linker linker, FerryAbiContext context)
    {
        ArgumentNullException.ThrowIfNull(linker);
        ArgumentNullException.ThrowIfNull(context);
        var host = new FerryAbiHost(context);
        const ValueType I = ValueType.I32, L = ValueType.I64;
        linker.DefineFunction(ModuleName, "arg_count", new FuncType([], [I]), new Func<int>(host.ArgCount));
        linker.DefineFunction(ModuleName, "arg_get", new FuncType([I, L, L], [L]), new Func<int, long, long, long>(host.ArgGet));
        linker.DefineFunction(ModuleName, "write", new FuncType([I, L, L], [L]), new Func<int, long, long, long>(host.Write));
        linker.DefineFunction(ModuleName, "clock_ns", new FuncType([], [L]), new Func<long>(host.ClockNs));
        linker.DefineFunction(ModuleName, "sleep_ns", new FuncType([L], []), new Action<long>(host.SleepNs));
        linker.DefineFunction(ModuleName, "exit", new FuncType([I], []), new Action<int>(Exit));
        return host;
    }

    /// <summary>Attaches the instance whose memory the functions use (its export "memory", else its memory 0).</summary>
    public void Bind(Instance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        memory = instance.Exports.TryGetValue("memory", out var m) && m is LinearMemory lm ? lm : instance.Memory
            ?? throw new LinkException("a ferry-ABI module must have a memory");
        Instance = instance;
        Context.Guest = instance.State;
    }

    /// <summary>Runs <c>_start</c>; returns 0 when it returns, the <c>exit</c> code otherwise. Output is flushed in every case.</summary>
    public int RunStart()
    {
        var instance = Instance ?? throw new InvalidOperationException("Bind the instance first");
        if (!instance.Exports.TryGetValue("_start", out var s) || s is not FuncRef start) throw new LinkException("the module has no _start export");
        try
        {
            Instance.Invoke(start);
            return 0;
        }
        catch (FerryAbiExitException e)
        {
            return e.Code;
        }
        finally
        {
            Context.FlushOutput();
        }
    }

    /// <summary>Guest bytes [address, address+length), or null when any of it lies outside memory.</summary>
    private byte* Ptr(long address, long length)
    {
        var m = memory ?? throw new InvalidOperationException("ferry-ABI function called before Bind");
        if (address < 0 || length < 0 || (ulong)address > m.Size || (ulong)length > m.Size - (ulong)address) return null;
        // During post-copy the bytes may still be on the source: wait for them (see LinearMemory.Presence).
        if (length > 0) m.Presence?.EnsurePresent((ulong)address, (ulong)length);
        return m.Base + address;
    }

    private int ArgCount() => Context.Args.Count;

    private long ArgGet(int index, long buffer, long bufferLength)
    {
        if ((uint)index >= (uint)Context.Args.Count || bufferLength < 0) return -1;
        var bytes = System.Text.Encoding.UTF8.GetBytes(Context.Args[index]);
        var n = (int)Math.Min(bytes.Length, bufferLength);
        var p = Ptr(buffer, n);
        if (p == null) return -1;
        bytes.AsSpan(0, n).CopyTo(new Span<byte>(p, n));
        return bytes.Length;
    }

    private long Write(int fd, long pointer, long length)
    {
        if (fd is not (1 or 2) || length < 0) return -1;
        var p = Ptr(pointer, length);
        if (p == null) return -1;
        var output = Context.Output(fd);
        try
        {
            for (long done = 0; done < length;)
            {
                var chunk = (int)Math.Min(length - done, 1 << 30);
                output.Write(new ReadOnlySpan<byte>(p + done, chunk));
                done += chunk;
            }
            if (fd == 2) output.Flush();
            return length;
        }
        catch (IOException)
        {
            return -1;
        }
    }

    private long ClockNs() => Context.MonotonicNanos;

    /// <summary>
    /// Sleeps, but gives way to a freeze: the call then unwinds and is executed again after resume (sleeping its
    /// full duration again — at most one extra interval of a paced program's delay).
    /// </summary>
    private void SleepNs(long ns)
    {
        if (ns <= 0) return;
        var timeout = TimeSpan.FromTicks(Math.Min(ns / 100, TimeSpan.FromDays(1).Ticks));
        if (Context.Guest is not { } guest)
        {
            Thread.Sleep(timeout);
            return;
        }
        var token = guest.FreezeToken;
        if (token.IsCancellationRequested || token.WaitHandle.WaitOne(timeout)) guest.UnwindFromHost();
    }

    private static void Exit(int code) => throw new FerryAbiExitException(code);
}
