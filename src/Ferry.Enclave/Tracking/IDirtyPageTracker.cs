using System.Runtime.CompilerServices;
namespace Ferry.Enclave.Tracking;

/// <summary>
/// Reports which 4 KiB pages of a linear memory were written, for pre-copy live migration. Two implementations:
/// <see cref="KernelDirtyTracker"/> (userfaultfd asynchronous write protection read with PAGEMAP_SCAN; works with any
/// compiled code) and <see cref="CompilerDirtyTracker"/> (the byte map that code compiled with
/// <c>CompileOptions.DirtyTracking</c> writes). Both report the same pages for the same program.
/// </summary>
/// <remarks>
/// Page indices are relative to <c>LinearMemory.Base</c>: page <c>p</c> covers bytes <c>[p * 4096, (p + 1) * 4096)</c>.
/// <see cref="Collect"/> may run on another thread while the instance runs; a page written while it runs is
/// reported by this call or the next one. Collect calls must not overlap each other.
/// </remarks>
public interface IDirtyPageTracker : IDisposable
{
    /// <summary>Size of a tracked page in bytes (4096).</summary>
    public const int PageSize = 4096;

    /// <summary>"kernel" or "compiler".</summary>
    string Method { get; }

    /// <summary>Number of 4 KiB pages the memory has committed now (its current size / 4096).</summary>
    long PageCount { get; }

    /// <summary>
    /// Begins (or restarts) tracking: every committed page is clean from now on, and pages written after this call
    /// are reported by <see cref="Collect"/>.
    /// </summary>
    void Start();

    /// <summary>
    /// Appends the indices of the pages written since the last <see cref="Start"/> or <see cref="Collect"/>, in
    /// ascending order, and atomically marks them clean again. Returns how many were appended.
    /// </summary>
    int Collect(List<long> pages);

    /// <summary>
    /// The last <see cref="Collect"/> of a migration (the guest is frozen; nothing is collected after it): the same
    /// pages, but the tracker need not re-arm for the next round. The kernel tracker skips re-protecting the written
    /// pages, which is most of a collection's cost and falls inside the downtime.
    /// </summary>
    int CollectLast(List<long> pages) => Collect(pages);

    /// <summary>
    /// <see cref="CollectLast"/> into a page bitmap (bit b of byte i is page 8i + b, the state record's format): sets
    /// the bits of the pages written and returns how many were not set yet. A list of every written page costs tens
    /// of milliseconds inside the downtime when a post-copy or hybrid guest wrote a few hundred thousand.
    /// </summary>
    /// <exception cref="ArgumentException">The bitmap is shorter than <see cref="PageCount"/> pages.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a loop over every page, inside a downtime: optimised from its first call (why: PageBitmap, Ferry.Migration)
    long CollectLastInto(Span<byte> bitmap)
    {
        if ((long)bitmap.Length * 8 < PageCount) throw new ArgumentException($"the bitmap covers {(long)bitmap.Length * 8} pages, the memory {PageCount}", nameof(bitmap));
        var pages = new List<long>();
        CollectLast(pages);
        long added = 0;
        foreach (var p in pages)
        {
            ref var b = ref bitmap[(int)(p >> 3)];
            var bit = (byte)(1 << (int)(p & 7));
            if ((b & bit) == 0) added++;
            b |= bit;
        }
        return added;
    }

    /// <summary>Ends tracking (Collect then throws); the memory keeps working at full speed. Idempotent.</summary>
    void Stop();
}
