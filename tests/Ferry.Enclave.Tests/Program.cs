using System.Runtime.CompilerServices;
using Ferry.Enclave.Tracking;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tests;

/// <summary>
/// Entry point for running this assembly as a child process: `dotnet exec Ferry.Enclave.Tests.dll gc-probe MODE`.
/// A garbage collection that cannot suspend a thread blocked in a userfaultfd fault hangs the whole runtime (every
/// allocating thread waits for it), so such scenarios run here, where the parent test can kill them on a deadline.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 2 && args[0] == "gc-probe") return GcProbe.Run(args[1]);
        Console.Error.WriteLine("usage: Ferry.Enclave.Tests gc-probe interruptible|ensure-present|plain|wasm");
        return 2;
    }
}

/// <summary>
/// A thread blocks on a missing page while the page source holds the page back; another thread runs GC.Collect;
/// then the source releases the page. Exit code 0 means the collection completed while the fault was pending and the
/// reader got the right data.
/// </summary>
public static unsafe class GcProbe
{
    private const int Page = 3;

    public static int Run(string mode)
    {
        using var source = new LinearMemory(1, 1, false, 65536);
        for (var i = 0; i < (int)source.Size; i++) source.Base[i] = (byte)(i * 7 + 3);

        Instance? wasm = null;
        LinearMemory destination;
        if (mode == "wasm")
        {
            wasm = Wat.Instantiate("(module (memory (export \"m\") 1) (func (export \"peek\") (param i32) (result i32) (i32.load8_u (local.get 0))))");
            destination = wasm.Memory!;
        }
        else
        {
            destination = new LinearMemory(1, 1, false, 65536);
        }

        using var release = new ManualResetEventSlim(false);
        using var asked = new ManualResetEventSlim(false);
        using var server = new MissingPageServer(destination, new GatedSource(source, asked, release));
        var address = Page * 4096 + 5;
        var expected = source.Base[address];
        var got = -1;
        var reader = new Thread(() =>
        {
            switch (mode)
            {
                case "interruptible":
                    got = ReadInLoop(destination.Base + address, 1);
                    break;
                case "ensure-present":
                    server.EnsurePresent((ulong)address, 1);
                    got = destination.Base[address];
                    break;
                case "plain":
                    got = ReadPlain(destination.Base + address);
                    break;
                case "wasm":
                    got = wasm!.Invoke("peek", WasmValue.FromI32(address))[0].I32;
                    break;
                default:
                    throw new ArgumentException("unknown mode " + mode);
            }
        })
        { IsBackground = true };
        reader.Start();
        if (!asked.Wait(TimeSpan.FromSeconds(10)))
        {
            Console.Error.WriteLine("the reader never faulted");
            return 3;
        }
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var collector = new Thread(() => GC.Collect(2, GCCollectionMode.Forced, blocking: true)) { IsBackground = true };
        collector.Start();
        var collected = collector.Join(TimeSpan.FromSeconds(5));
        var ms = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        release.Set();
        var read = reader.Join(TimeSpan.FromSeconds(5));
        if (!collected) return Fail($"{mode}: GC.Collect did not finish within 5 s while a fault was pending");
        if (!read) return Fail($"{mode}: the reader did not finish after the page was released");
        if (got != expected) return Fail($"{mode}: read {got}, expected {expected}");
        Console.WriteLine($"{mode}: GC.Collect finished in {ms:F1} ms while the fault was pending; reader got the page ({server.GetFaultLatency()})");
        return 0;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 1;
    }

    /// <summary>A loop without calls: the JIT makes the method fully interruptible, so a GC can suspend the thread at any instruction.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static int ReadInLoop(byte* p, int count)
    {
        var sum = 0;
        for (var i = 0; i < count; i++) sum += p[i * 64];
        return sum;
    }

    /// <summary>Straight-line code: partially interruptible, a GC can stop the thread only at calls and returns.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int ReadPlain(byte* p) => *p;

    private sealed class GatedSource(LinearMemory memory, ManualResetEventSlim asked, ManualResetEventSlim release) : IPageSource
    {
        public bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken)
        {
            if (pageIndex == Page)
            {
                asked.Set();
                release.Wait(cancellationToken);
            }
            new ReadOnlySpan<byte>(memory.Base + pageIndex * 4096, 4096).CopyTo(destination);
            return true;
        }
    }
}
