using System.Runtime.InteropServices;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// One byte per 4 KiB page of a memory's whole reservation, in native memory that never moves (compiled code
/// caches its address). Reserved with MAP_NORESERVE: untouched parts cost no RAM.
/// </summary>
public sealed unsafe class PageMap : IDisposable
{
    public const int PageShift = 12;

    public PageMap(ulong bytesCovered)
    {
        Length = (long)((bytesCovered + (1UL << PageShift) - 1) >> PageShift);
        var size = (nuint)Math.Max(Length, 1);
        var p = Libc.mmap(0, size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if (p == Libc.MAP_FAILED || p == 0) throw new InsufficientMemoryException($"cannot map a page map of {size} bytes (errno {Marshal.GetLastPInvokeError()})");
        Pointer = (byte*)p;
    }

    /// <summary>Pages covered.</summary>
    public long Length { get; }
    public byte* Pointer { get; private set; }
    public Span<byte> Bytes(long start, int count) => new(Pointer + start, count);

    /// <summary>
    /// Maps the part of the map that covers pages [0, <paramref name="pages"/>) now (MADV_POPULATE_WRITE, Linux 5.14;
    /// otherwise by writing a zero per OS page), so that marking them later takes no page faults. A migration
    /// destination does this before the guest freezes on the source: on this VM each first touch of a fresh page
    /// traps (tens of microseconds), and marking 1 GiB of pending pages touches 64 of them.
    /// </summary>
    public void Populate(long pages)
    {
        var bytes = (nuint)Math.Clamp(pages, 0, Length);
        if (bytes == 0) return;
        if (Libc.madvise((nint)Pointer, bytes, Libc.MADV_POPULATE_WRITE) == 0) return;
        for (nuint i = 0; i < bytes; i += 4096) Volatile.Write(ref Pointer[i], Volatile.Read(ref Pointer[i]));
    }

    /// <summary>Zeroes the whole map by handing its pages back to the kernel (they read back as zero).</summary>
    public void Clear()
    {
        if (Libc.madvise((nint)Pointer, (nuint)Math.Max(Length, 1), Libc.MADV_DONTNEED) != 0)
        {
            new Span<byte>(Pointer, (int)Math.Min(Length, int.MaxValue)).Clear();
        }
    }

    public void Dispose()
    {
        if (Pointer != null)
        {
            Libc.munmap((nint)Pointer, (nuint)Math.Max(Length, 1));
            Pointer = null;
        }
        GC.SuppressFinalize(this);
    }

    ~PageMap()
    {
        if (Pointer != null) Libc.munmap((nint)Pointer, (nuint)Math.Max(Length, 1));
    }
}
