using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// Dirty-page tracking by the compiler: code compiled with <c>CompileOptions.DirtyTracking</c> sets
/// <c>dirty[addr &gt;&gt; 12] = 1</c> in the byte map at <see cref="InstanceBase.DirtyPages"/> for every store (and
/// bulk memory operations mark their ranges). The engine installs that map when it instantiates such a module;
/// this tracker reads and clears it.
/// </summary>
/// <remarks>
/// <para>The map has one byte per 4 KiB page of the memory's whole reservation (<c>ReservedBytes / 4096</c>), in an
/// anonymous MAP_NORESERVE mapping: untouched parts cost nothing, and growth never needs a bigger map. Compiled code
/// loads the pointer once at function entry, so the map never moves and lives as long as the instance
/// (<c>InstanceBase.DirtyMap</c>). <see cref="Stop"/> and <see cref="Dispose"/> only stop reporting.</para>
/// <para><see cref="Collect"/> scans only the committed part with 256-bit (or 128-bit) vectors, skipping clean
/// stretches, and takes each nonzero 8-byte word with an atomic exchange, so a mark set concurrently is either
/// returned now or left for the next call, never lost. It allocates nothing beyond growing the caller's list.</para>
/// <para>Ordering caveat: compiled code marks a page just before it stores to it. A store on another thread that is
/// in flight exactly while <see cref="Collect"/> takes its mark can land after the caller has copied the page; the
/// final round of a migration must therefore run with the instance frozen (as pre-copy does anyway). The kernel
/// method has no such window.</para>
/// </remarks>
public sealed unsafe class CompilerDirtyTracker : IDirtyPageTracker
{
    private readonly LinearMemory memory;
    private readonly PageMap map;
    private bool started;
    private bool disposed;

    /// <summary>Tracks <paramref name="instance"/> through the dirty-page map the engine installed for its compiled code.</summary>
    /// <exception cref="InvalidOperationException">The instance has no memory or was not compiled with dirty tracking.</exception>
    public CompilerDirtyTracker(InstanceBase instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        memory = instance.Memory0 ?? throw new InvalidOperationException("the instance has no linear memory to track");
        map = instance.DirtyMap
            ?? throw new InvalidOperationException("the module was not compiled with CompileOptions.DirtyTracking = true; compiled stores would not be tracked");
    }

    public string Method => "compiler";

    public long PageCount => (long)(memory.Size >> 12);

    /// <summary>The map compiled code writes (one byte per 4 KiB page of the reservation).</summary>
    public byte* Map => map.Pointer;

    /// <summary>Bytes in <see cref="Map"/>.</summary>
    public long MapLength => map.Length;

    public void Start()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        // Marks made before this call are discarded; pages of the map return to the kernel (they read back as zero).
        map.Clear();
        Interlocked.MemoryBarrier();
        started = true;
    }

    public int Collect(List<long> pages)
    {
        ArgumentNullException.ThrowIfNull(pages);
        ObjectDisposedException.ThrowIf(disposed, this);
        if (!started) throw new InvalidOperationException("Collect before Start (or after Stop)");
        var limit = Math.Min((long)((memory.Size + 4095) >> 12), map.Length);
        var n = Scan(map.Pointer, limit, pages);
        // Order the clears before the caller's reads of page contents.
        Interlocked.MemoryBarrier();
        return n;
    }

    /// <summary>
    /// The last collection straight into a page bitmap: each 8-byte word of the map becomes one bitmap byte. No
    /// list, so ~290,000 written pages (kvstore, hybrid at 3 GiB) no longer cost ~20 ms inside the downtime.
    /// </summary>
    public long CollectLastInto(Span<byte> bitmap)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (!started) throw new InvalidOperationException("Collect before Start (or after Stop)");
        var limit = Math.Min((long)((memory.Size + 4095) >> 12), map.Length);
        if ((long)bitmap.Length * 8 < limit) throw new ArgumentException($"the bitmap covers {(long)bitmap.Length * 8} pages, the memory {limit}", nameof(bitmap));
        var sink = new BitmapSink(bitmap);
        long added = Take(map.Pointer, limit, ref sink);
        Interlocked.MemoryBarrier();
        return added;
    }

    public void Stop() => started = false;

    public void Dispose()
    {
        started = false;
        disposed = true;
    }

    /// <summary>Appends the indices of nonzero bytes in map[0, length) and zeroes them atomically, 8 bytes at a time.</summary>
    internal static int Scan(byte* map, long length, List<long> pages)
    {
        var sink = new ListSink(pages);
        return Take(map, length, ref sink);
    }

    /// <summary>
    /// Takes every nonzero mark of map[0, length) (atomically zeroing it, 8 bytes at a time) and hands it to
    /// <paramref name="sink"/>; clean stretches are skipped with vector loads. Returns the sink's count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a loop over every page, inside a downtime: optimised from its first call (why: PageBitmap, Ferry.Migration)
    private static int Take<TSink>(byte* map, long length, ref TSink sink)
        where TSink : IMarkSink, allows ref struct
    {
        var count = 0;
        long i = 0;
        // The map is page-aligned, so vector loads are aligned.
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 128 <= length; i += 128)
            {
                var p = map + i;
                var any = Vector256.Load(p) | Vector256.Load(p + 32) | Vector256.Load(p + 64) | Vector256.Load(p + 96);
                if (any == Vector256<byte>.Zero) continue;
                for (var w = 0; w < 128; w += 8) count += TakeWord(map, i + w, ref sink);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 64 <= length; i += 64)
            {
                var p = map + i;
                var any = Vector128.Load(p) | Vector128.Load(p + 16) | Vector128.Load(p + 32) | Vector128.Load(p + 48);
                if (any == Vector128<byte>.Zero) continue;
                for (var w = 0; w < 64; w += 8) count += TakeWord(map, i + w, ref sink);
            }
        }
        for (; i + 8 <= length; i += 8) count += TakeWord(map, i, ref sink);
        for (; i < length; i++)
        {
            if (map[i] == 0) continue;
            if (Interlocked.Exchange(ref map[i], 0) != 0) count += sink.Page(i);
        }
        return count;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int TakeWord<TSink>(byte* map, long offset, ref TSink sink)
        where TSink : IMarkSink, allows ref struct
    {
        ref var word = ref *(ulong*)(map + offset);
        if (Volatile.Read(ref word) == 0) return 0;
        return sink.Word(offset, Interlocked.Exchange(ref word, 0UL));
    }

    /// <summary>Where taken marks go. Byte k of a word (little-endian) is page offset + k.</summary>
    private interface IMarkSink
    {
        /// <summary>The nonzero marks of pages [offset, offset + 8) (offset a multiple of 8); returns pages counted.</summary>
        int Word(long offset, ulong marks);

        /// <summary>One marked page (the map's tail); returns pages counted.</summary>
        int Page(long page);
    }

    /// <summary>Appends page indices to a list; counts every page.</summary>
    private readonly struct ListSink(List<long> pages) : IMarkSink
    {
        public int Word(long offset, ulong marks)
        {
            var count = 0;
            while (marks != 0)
            {
                var k = System.Numerics.BitOperations.TrailingZeroCount(marks) >> 3;
                pages.Add(offset + k);
                count++;
                marks &= ~(0xFFUL << (k * 8));
            }
            return count;
        }

        public int Page(long page)
        {
            pages.Add(page);
            return 1;
        }
    }

    /// <summary>Sets the pages' bits in a page bitmap; counts only bits that were not set yet.</summary>
    private readonly ref struct BitmapSink(Span<byte> bitmap) : IMarkSink
    {
        private readonly Span<byte> bitmap = bitmap;

        public int Word(long offset, ulong marks)
        {
            // Low bit of each byte = "any bit of that byte set" (a mark is normally 1), then the eight low bits packed
            // into one byte: byte k of the word becomes bit k.
            marks |= marks >> 1;
            marks |= marks >> 2;
            marks |= marks >> 4;
            marks &= 0x0101010101010101UL;
            return Set((int)(offset >> 3), (byte)((marks * 0x0102040810204080UL) >> 56));
        }

        public int Page(long page) => Set((int)(page >> 3), (byte)(1 << (int)(page & 7)));

        private int Set(int index, byte bits)
        {
            ref var b = ref bitmap[index];
            var added = System.Numerics.BitOperations.PopCount((uint)(bits & ~b));
            b |= bits;
            return added;
        }
    }
}
