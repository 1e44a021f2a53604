using System.Diagnostics;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Compiler-based post-copy on the destination: the guest runs while pages still arrive. Compiled accesses test
/// the present-page map; a miss lands here, asks the source for the pages and waits until they are installed.
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
        var present = state.PresentPages;
        var pages = (long)(memory.Size >> PageMap.PageShift);
        for (long p = 0; p < pages; p++)
        {
            var pending = (p >> 3) < pendingBitmap.Length && (pendingBitmap[p >> 3] & (1 << (int)(p & 7))) != 0;
            present[p] = pending ? (byte)0 : (byte)1;
            if (pending) missing++;
        }
        // Pages beyond today's size (growth later) are fresh zero pages: present.
        new Span<byte>(present + pages, (int)Math.Min(state.PresentMap!.Length - pages, int.MaxValue)).Fill(1);
        state.MissingPages = this;
        memory.Presence = this;
        if (missing == 0) Finish();
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

    public bool IsPresent(long page) => Volatile.Read(ref state.PresentPages[page]) != 0;

    /// <summary>Called (under the destination's apply lock) after a page's contents are written.</summary>
    public void Arrived(long page)
    {
        var present = state.PresentPages;
        if (Volatile.Read(ref present[page]) != 0) return;
        Volatile.Write(ref present[page], 1);
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
        var present = state.PresentPages;
        var first = (long)(address >> PageMap.PageShift);
        var last = (long)((address + length - 1) >> PageMap.PageShift);
        List<long>? needed = null;
        for (var p = first; p <= last; p++)
        {
            if (Volatile.Read(ref present[p]) == 0) (needed ??= []).Add(p);
        }
        if (needed is null) return;
        var sw = Stopwatch.StartNew();
        request([.. needed]);
        lock (gate)
        {
            foreach (var p in needed)
            {
                while (Volatile.Read(ref present[p]) == 0)
                {
                    if (!Monitor.Wait(gate, TimeSpan.FromSeconds(30)) && Volatile.Read(ref present[p]) == 0)
                    {
                        throw new TrapException(TrapKind.HostError, $"page {p} did not arrive from the migration source within 30 s");
                    }
                }
            }
            faultMs.Add(sw.Elapsed.TotalMilliseconds);
        }
    }
}
