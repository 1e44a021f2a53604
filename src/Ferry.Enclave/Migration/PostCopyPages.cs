using System.Diagnostics;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Compiler-based post-copy on the destination: the guest runs while pages still arrive. Compiled accesses test
/// the absent-page map; a miss lands here, asks the source for the pages and waits until they are installed.
/// Host access to guest memory goes through <see cref="LinearMemory.Span"/>, which waits the same way.
/// </summary>
public sealed unsafe class PostCopyPages : IMissingPageHandler
{
    private readonly InstanceBase state;
    private readonly LinearMemory memory;
    private readonly Action<long[]> request;
    private readonly object gate = new();
    private readonly List<double> faultMs = [];
    private long missing;
    private readonly TaskCompletionSource complete = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PostCopyPages(Instance instance, byte[] pendingBitmap, Action<long[]> request)
    {
        state = instance.State;
        memory = instance.Memory!;
        this.request = request;
        // The absent map starts all zero (present): mark only the pending pages, so this costs a pass over pages/8
        // bytes while the guest is down rather than a write per page of the reservation. Each bitmap byte becomes
        // eight map bytes in one store (a page at a time took ~4 ms for the 786,000 pending pages of 3 GiB).
        missing = MarkAbsent(state.AbsentPages, pendingBitmap, (long)(memory.Size >> PageMap.PageShift));
        state.MissingPages = this;
        memory.Presence = this;
        if (missing == 0) Finish();
    }

    /// <summary>
    /// Sets the absent-map byte of every pending page below <paramref name="pages"/>; returns how many. Compiled fully
    /// optimised at its first call: it runs once per migration, over every page, while the guest is down (under tiered
    /// compilation the JIT recompiled it mid-loop there, at 3 GiB).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static long MarkAbsent(byte* absent, byte[] pendingBitmap, long pages)
    {
        long marked = 0;
        var fullBytes = (int)Math.Min(pendingBitmap.Length, pages >> 3);
        for (var i = 0; i < fullBytes; i++)
        {
            var bits = pendingBitmap[i];
            if (bits == 0) continue;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(absent + ((long)i << 3), 8), ExpandBits[bits]);
            marked += System.Numerics.BitOperations.PopCount(bits);
        }
        foreach (var page in BitmapPages.Of(pendingBitmap.AsSpan(fullBytes)))
        {
            var p = page + ((long)fullBytes << 3);
            if (p >= pages) break; // beyond the memory (ascending: all that follow too): nothing to wait for
            absent[p] = 1;
            marked++;
        }
        return marked;
    }

    /// <summary>For each bitmap byte, the eight map bytes it stands for (bit k set → byte k is 1), as one
    /// little-endian word.</summary>
    private static readonly ulong[] ExpandBits = BuildExpandBits();

    private static ulong[] BuildExpandBits()
    {
        var table = new ulong[256];
        for (var b = 0; b < 256; b++)
        {
            ulong word = 0;
            for (var k = 0; k < 8; k++) if ((b & (1 << k)) != 0) word |= 1UL << (8 * k);
            table[b] = word;
        }
        return table;
    }

    /// <summary>Completes when every pending page has arrived.</summary>
    public Task Completion => complete.Task;

    public long Missing => Interlocked.Read(ref missing);

    /// <summary>Latency of each fault the guest (or host) waited on, in milliseconds.</summary>
    public double[] FaultLatencies
    {
        get
        {
            lock (gate) return [.. faultMs];
        }
    }

    public bool IsPresent(long page) => Volatile.Read(ref state.AbsentPages[page]) == 0;

    /// <summary>Called (under the destination's apply lock) after a page's contents are written.</summary>
    public void Arrived(long page)
    {
        var absent = state.AbsentPages;
        if (Volatile.Read(ref absent[page]) == 0) return;
        Volatile.Write(ref absent[page], 0);
        if (Interlocked.Decrement(ref missing) == 0) Finish();
        lock (gate) Monitor.PulseAll(gate);
    }

    private void Finish()
    {
        memory.Presence = null;
        complete.TrySetResult();
    }

    public void EnsurePresent(ulong address, ulong length)
    {
        if (length == 0) return;
        var absent = state.AbsentPages;
        var first = (long)(address >> PageMap.PageShift);
        var last = (long)((address + length - 1) >> PageMap.PageShift);
        List<long>? needed = null;
        for (var p = first; p <= last; p++)
        {
            if (Volatile.Read(ref absent[p]) != 0) (needed ??= []).Add(p);
        }
        if (needed is null) return;
        var sw = Stopwatch.StartNew();
        request([.. needed]);
        lock (gate)
        {
            foreach (var p in needed)
            {
                while (Volatile.Read(ref absent[p]) != 0)
                {
                    if (!Monitor.Wait(gate, TimeSpan.FromSeconds(30)) && Volatile.Read(ref absent[p]) != 0)
                    {
                        throw new TrapException(TrapKind.HostError, $"page {p} did not arrive from the migration source within 30 s");
                    }
                }
            }
            faultMs.Add(sw.Elapsed.TotalMilliseconds);
        }
    }
}
