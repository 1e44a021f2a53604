using static Ferry.Enclave.Tracking.Native;

namespace Ferry.Enclave.Tracking;

/// <summary>
/// A byte map in its own anonymous mapping (MAP_NORESERVE): page-aligned, never moves, and untouched parts cost
/// no memory. Compiled code holds raw pointers into it, so it is freed only by <see cref="Dispose"/> or the finalizer.
/// </summary>
internal sealed unsafe class NativeByteMap : IDisposable
{
    private nint address;

    public NativeByteMap(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        MappedBytes = (nuint)Math.Max(4096, (length + 4095) & ~4095L);
        address = mmap(0, MappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (address == MAP_FAILED || address == 0)
        {
            throw new InsufficientMemoryException($"cannot map a {length}-byte page map: {Describe(Errno)}");
        }
    }

    public byte* Pointer => (byte*)address;
    public long Length { get; }
    public nuint MappedBytes { get; }

    /// <summary>Zeroes [0, bytes) by giving the pages back to the kernel (MADV_DONTNEED on private anonymous memory reads back as zero).</summary>
    public void Discard(long bytes)
    {
        var whole = (nuint)Math.Min((ulong)((bytes + 4095) & ~4095L), MappedBytes);
        if (whole > 0 && madvise(address, whole, MADV_DONTNEED) != 0)
        {
            new Span<byte>(Pointer, (int)Math.Min(bytes, int.MaxValue)).Clear();
        }
    }

    public void Dispose()
    {
        var a = Interlocked.Exchange(ref address, 0);
        if (a != 0) munmap(a, MappedBytes);
        GC.SuppressFinalize(this);
    }

    ~NativeByteMap()
    {
        if (address != 0) munmap(address, MappedBytes);
    }
}
