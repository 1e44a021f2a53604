using Ferry.Enclave.Migration;

namespace Ferry.Migration.Strategies;

/// <summary>
/// Sets of page indices as bitmaps (bit b of byte i is page 8i+b: the pending-page map format of the state record).
/// Union and ordering through a bitmap cost a pass over pageCount/8 bytes, with no hashing or sorting: this runs
/// while the guest is frozen.
/// </summary>
public static class PageBitmap
{
    public static byte[] Of(List<long> pages, long pageCount)
    {
        var b = new byte[(pageCount + 7) / 8];
        Add(b, pages);
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

    /// <summary>Sets the bits of <paramref name="pages"/> in <paramref name="bitmap"/> (a union in place).</summary>
    public static void Add(byte[] bitmap, List<long> pages)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        ArgumentNullException.ThrowIfNull(pages);
        foreach (var p in pages) bitmap[p >> 3] |= (byte)(1 << (int)(p & 7));
    }

    /// <summary>The set bits as ascending page indices (empty 64-page words skipped).</summary>
    public static List<long> Pages(byte[] bitmap, int capacityHint = 0)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        var pages = new List<long>(capacityHint);
        foreach (var page in BitmapPages.Of(bitmap)) pages.Add(page);
        return pages;
    }
}
