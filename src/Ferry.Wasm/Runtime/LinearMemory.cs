using System.Runtime.InteropServices;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// A linear memory in native memory. The whole maximum size is reserved up front as inaccessible address
/// space (no RAM is used), and pages are made accessible as the memory grows, so <see cref="Base"/> never
/// moves: compiled code may cache it for the life of a call. Fresh pages are zero (anonymous mappings).
/// </summary>
public sealed unsafe class LinearMemory : IDisposable
{
    /// <summary>Start of the memory. Public for compiled code; never changes while the memory lives.</summary>
    public byte* Base;

    /// <summary>Current size in bytes. Public for compiled code, which reloads it after calls and memory.grow.</summary>
    public ulong Size;

    private readonly ulong reservedBytes;
    private ulong committedBytes;

    /// <summary>Creates a memory of <paramref name="minPages"/> pages that may grow to <paramref name="maxPages"/>.</summary>
    /// <param name="reserveCapBytes">Upper bound on address space reserved when the type allows more (e.g. memory64 with no max).</param>
    public LinearMemory(ulong minPages, ulong? maxPages, bool is64, ulong reserveCapBytes)
    {
        Is64 = is64;
        DeclaredMaxPages = maxPages;
        var typeMax = is64 ? MemoryType.MaxPages64 : MemoryType.MaxPages32;
        MaxPages = Math.Min(maxPages ?? typeMax, typeMax);
        var capPages = reserveCapBytes / MemoryType.PageSize;
        var reservePages = Math.Min(MaxPages, Math.Max(capPages, minPages));
        if (minPages > reservePages) throw new TrapException(TrapKind.HostError, $"cannot reserve {minPages} pages of memory");
        reservedBytes = Math.Max(reservePages * MemoryType.PageSize, (ulong)Environment.SystemPageSize);
        var p = Libc.mmap(0, (nuint)reservedBytes, Libc.PROT_NONE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if (p == Libc.MAP_FAILED || p == 0)
        {
            throw new InsufficientMemoryException($"cannot reserve {reservedBytes} bytes of address space for linear memory (errno {Marshal.GetLastPInvokeError()})");
        }
        Base = (byte*)p;
        // Transparent huge pages where the kernel offers them (as QEMU does for guest RAM): the first touch of a
        // large memory then takes one fault per 2 MiB instead of one per 4 KiB. Measured here (a paravirtualised
        // guest, where every new 4 KiB mapping also traps to the hypervisor): writing 1 GiB of fresh memory took
        // 3.8 s in 4 KiB pages and 0.1 s in huge pages — the bulk of a 1 GiB migration's page transfer on the
        // destination. Tracking stays at 4 KiB (compiled maps; the kernel splits huge pages it write-protects or
        // discards). Advisory: refused or unavailable is fine. FERRY_HUGEPAGES=0 turns it off.
        if (UseHugePages) _ = Libc.madvise(p, (nuint)reservedBytes, Libc.MADV_HUGEPAGE);
        if (!Commit(minPages * MemoryType.PageSize))
        {
            Dispose();
            throw new InsufficientMemoryException($"cannot commit {minPages} pages of linear memory");
        }
        Size = minPages * MemoryType.PageSize;
    }

    /// <summary>Whether new memories ask for transparent huge pages (environment FERRY_HUGEPAGES=0 turns it off).</summary>
    public static bool UseHugePages { get; } = Environment.GetEnvironmentVariable("FERRY_HUGEPAGES") != "0";

    public bool Is64 { get; }
    /// <summary>The maximum the memory's type declares (or the host imposed), if any; used for import matching.</summary>
    public ulong? DeclaredMaxPages { get; }
    public ulong MaxPages { get; }
    public ulong Pages => Size / MemoryType.PageSize;
    public ulong ReservedBytes => reservedBytes;

    /// <summary>Raised after a successful grow with the old and new size in bytes (tracking hooks use it).</summary>
    public event Action<ulong, ulong>? Grown;

    /// <summary>
    /// Set while a post-copy migration is still delivering pages: host access through <see cref="Span"/> waits
    /// for the pages it touches (host code must not read guest memory through <see cref="Base"/> meanwhile).
    /// </summary>
    public IMissingPageHandler? Presence { get; set; }

    public Span<byte> Span(ulong offset, int length)
    {
        if (offset + (ulong)length > Size || length < 0) throw new TrapException(TrapKind.OutOfBoundsMemory);
        Presence?.EnsurePresent(offset, (ulong)length);
        return new Span<byte>(Base + offset, length);
    }

    /// <summary>memory.grow: returns the old size in pages, or -1 if the memory cannot grow by that much.</summary>
    public long Grow(ulong deltaPages)
    {
        var oldPages = Pages;
        if (deltaPages == 0) return (long)oldPages;
        if (deltaPages > MaxPages - oldPages) return -1;
        var newBytes = (oldPages + deltaPages) * MemoryType.PageSize;
        if (newBytes > reservedBytes) return -1;
        if (!Commit(newBytes)) return -1;
        var oldSize = Size;
        Size = newBytes;
        Grown?.Invoke(oldSize, newBytes);
        return (long)oldPages;
    }

    private bool Commit(ulong bytes)
    {
        if (bytes <= committedBytes) return true;
        if (bytes > reservedBytes) return false;
        var rc = Libc.mprotect((nint)(Base + committedBytes), (nuint)(bytes - committedBytes), Libc.PROT_READ | Libc.PROT_WRITE);
        if (rc != 0) return false;
        committedBytes = bytes;
        return true;
    }

    public void Dispose()
    {
        if (Base != null)
        {
            Libc.munmap((nint)Base, (nuint)reservedBytes);
            Base = null;
            Size = 0;
        }
        GC.SuppressFinalize(this);
    }

    ~LinearMemory()
    {
        if (Base != null) Libc.munmap((nint)Base, (nuint)reservedBytes);
    }
}
