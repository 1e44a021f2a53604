using System.Runtime.CompilerServices;
using Ferry.Enclave.Migration;

namespace Ferry.Migration.Strategies;

/// <summary>
/// Sets of page indices as bitmaps (bit b of byte i is page 8i+b: the pending-page map format of the state record).
/// Union and ordering through a bitmap cost a pass over pageCount/8 bytes, with no hashing or sorting: this runs
/// while the guest is frozen.
/// <para>
/// The loops over every page that run inside a downtime (here, the trackers' last collection, the bitmap count)
/// are compiled fully optimised at their first call (<c>AggressiveOptimization</c>). Under tiered compilation they
/// would start as unoptimised code, and since each runs only a few times per process, a 3 GiB guest's ~786,000 pages
/// made the JIT recompile them mid-loop (on-stack replacement) while the guest was frozen: 2–3 such compilations per
/// post-copy switch-over in a JIT listing of the source.
/// </para>
/// </summary>
public static class PageBitmap
{
    public static byte[] Of(List<long> pages, long pageCount)
    {
        var b = new byte[(pageCount + 7) / 8];
        _ = Add(b, pages);
        return b;
    }

    /// <summary><paramref name="bitmap"/> itself if it covers <paramref name="pageCount"/> pages, else a longer copy.</summary>
    public static byte[] Grow(byte[] bitmap, long pageCount)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        var bytes = (pageCount + 7) / 8;
        if (bitmap.Length >= bytes) return bitmap;
        Array.Resize(ref bitmap, checked((int)bytes));
        return bitmap;
    }

    /// <summary>Sets the bits of <paramref name="pages"/> in <paramref name="bitmap"/> (a union in place); returns how many were not set yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static long Add(byte[] bitmap, List<long> pages)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        ArgumentNullException.ThrowIfNull(pages);
        long added = 0;
        foreach (var p in pages)
        {
            ref var b = ref bitmap[p >> 3];
            var bit = (byte)(1 << (int)(p & 7));
            if ((b & bit) == 0) added++;
            b |= bit;
        }
        return added;
    }

    /// <summary>The set bits as ascending page indices (empty 64-page words skipped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static List<long> Pages(byte[] bitmap, int capacityHint = 0)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        var pages = new List<long>(capacityHint);
        foreach (var page in BitmapPages.Of(bitmap)) pages.Add(page);
        return pages;
    }
}
