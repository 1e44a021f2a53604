using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// Which 4 KiB pages of a post-copy destination memory have arrived: one byte per page, 1 = present, in native
/// memory that never moves, so compiled code can test <c>map[addr &gt;&gt; 12]</c> before an access (the compiler-method
/// equivalent of <see cref="MissingPageServer"/>). Pages from <see cref="PageCount"/> up to <see cref="MapPages"/>
/// (memory committed later by growth, which starts as fresh zero pages) are present from the start.
/// </summary>
/// <remarks>
/// Thread-safe. <see cref="MarkPresent"/> publishes the byte with a full fence after the caller has written the
/// page's contents, so a reader that sees 1 also sees the data. <see cref="WaitForPage"/> blocks on one of
/// <see cref="Stripes"/> monitors chosen by page index; waiters of other pages on the same stripe wake, re-check and
/// wait again. Waiting threads are in an ordinary managed wait, so garbage collections proceed normally.
/// </remarks>
public sealed unsafe class PresentPageMap : IDisposable
{
    /// <summary>Number of monitors the waiters are spread over.</summary>
    public const int Stripes = 64;

    private readonly NativeByteMap map;
    private readonly object[] stripes = new object[Stripes];
    private readonly int[] waiters = new int[Stripes];
    private readonly object allPresent = new();
    private long missing;

    /// <param name="pageCount">Pages that start missing: [0, pageCount).</param>
    /// <param name="mapPages">Pages the map covers (at least <paramref name="pageCount"/>); the rest start present.</param>
    public PresentPageMap(long pageCount, long mapPages)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pageCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(mapPages, pageCount);
        map = new NativeByteMap(mapPages);
        PageCount = pageCount;
        MapPages = mapPages;
        missing = pageCount;
        for (var i = 0; i < Stripes; i++) stripes[i] = new object();
        for (var p = pageCount; p < mapPages; p += int.MaxValue)
        {
            new Span<byte>(map.Pointer + p, (int)Math.Min(mapPages - p, int.MaxValue)).Fill(1);
        }
    }

    public PresentPageMap(long pageCount)
        : this(pageCount, pageCount)
    {
    }

    /// <summary>A map for <paramref name="memory"/>: its committed pages start missing; it covers the whole reservation.</summary>
    public static PresentPageMap ForMemory(LinearMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        return new PresentPageMap((long)(memory.Size >> 12), (long)(memory.ReservedBytes >> 12));
    }

    /// <summary>The map (1 = present). Valid until <see cref="Dispose"/>; never moves.</summary>
    public byte* Pointer => map.Pointer;

    /// <summary>Pages that started missing.</summary>
    public long PageCount { get; }

    /// <summary>Pages the map covers (bytes at <see cref="Pointer"/>).</summary>
    public long MapPages { get; }

    /// <summary>Pages still missing.</summary>
    public long MissingCount => Volatile.Read(ref missing);

    public bool IsPresent(long page)
    {
        if ((ulong)page >= (ulong)MapPages) return page >= 0;
        return Volatile.Read(ref map.Pointer[page]) != 0;
    }

    /// <summary>Marks a page present (after its contents were written) and wakes its waiters. Returns false if it already was.</summary>
    public bool MarkPresent(long page)
    {
        if ((ulong)page >= (ulong)MapPages) return false;
        if (Interlocked.Exchange(ref map.Pointer[page], 1) != 0) return false;
        var left = Interlocked.Decrement(ref missing);
        var s = (int)(page & (Stripes - 1));
        if (Volatile.Read(ref waiters[s]) > 0)
        {
            lock (stripes[s]) Monitor.PulseAll(stripes[s]);
        }
        if (left == 0)
        {
            lock (allPresent) Monitor.PulseAll(allPresent);
        }
        return true;
    }

    /// <summary>Marks a page missing again (its contents were discarded). Returns false if it already was.</summary>
    public bool MarkMissing(long page)
    {
        if ((ulong)page >= (ulong)MapPages) return false;
        if (Interlocked.Exchange(ref map.Pointer[page], 0) == 0) return false;
        Interlocked.Increment(ref missing);
        return true;
    }

    /// <summary>Blocks until <paramref name="page"/> is present.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public void WaitForPage(long page, CancellationToken cancellationToken)
    {
        if (IsPresent(page)) return;
        WaitSlow(page, Timeout.InfiniteTimeSpan, cancellationToken);
    }

    /// <summary>Blocks until <paramref name="page"/> is present or the timeout passes; returns whether it is present.</summary>
    public bool WaitForPage(long page, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (IsPresent(page)) return true;
        return WaitSlow(page, timeout, cancellationToken);
    }

    private bool WaitSlow(long page, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var s = (int)(page & (Stripes - 1));
        var gate = stripes[s];
        var deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static o => { lock (o!) Monitor.PulseAll(o); }, gate)
            : default;
        lock (gate)
        {
            // Announce first (a full fence), then re-check: MarkPresent sets the byte before it looks for waiters.
            Interlocked.Increment(ref waiters[s]);
            try
            {
                while (!IsPresent(page))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var left = deadline == long.MaxValue ? Timeout.Infinite : (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
                    if (left == 0) return false;
                    Monitor.Wait(gate, left);
                }
                return true;
            }
            finally
            {
                Interlocked.Decrement(ref waiters[s]);
            }
        }
    }

    /// <summary>Blocks until every page is present or the timeout passes; returns whether all are.</summary>
    public bool WaitForAll(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static o => { lock (o!) Monitor.PulseAll(o); }, allPresent)
            : default;
        lock (allPresent)
        {
            while (MissingCount > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var left = deadline == long.MaxValue ? Timeout.Infinite : (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
                if (left == 0) return false;
                Monitor.Wait(allPresent, left);
            }
            return true;
        }
    }

    /// <summary>Appends the missing pages in ascending order (for a background push of what is left).</summary>
    public int GetMissing(List<long> pages, long start = 0, int max = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(pages);
        var n = 0;
        for (var p = Math.Max(0, start); p < PageCount && n < max; p++)
        {
            if (Volatile.Read(ref map.Pointer[p]) == 0)
            {
                pages.Add(p);
                n++;
            }
        }
        return n;
    }

    /// <summary>Frees the map. Compiled code must no longer use <see cref="Pointer"/>.</summary>
    public void Dispose() => map.Dispose();
}
