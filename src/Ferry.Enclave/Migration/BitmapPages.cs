using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Ferry.Enclave.Migration;

/// <summary>
/// The pages set in a page bitmap (bit b of byte i is page 8i+b: the state record's pending-page format), in
/// ascending order, without allocating: <c>foreach (var page in BitmapPages.Of(bitmap))</c>. Reads eight bytes at a
/// time as a little-endian word, so empty stretches cost one test per 64 pages.
/// </summary>
public ref struct BitmapPages
{
    private readonly ReadOnlySpan<byte> bitmap;
    private int next;     // first byte not yet loaded
    private long chunk;   // page of bit 0 of the loaded word (or byte)
    private ulong bits;   // its set bits not yet returned

    private BitmapPages(ReadOnlySpan<byte> bitmap)
    {
        this.bitmap = bitmap;
        next = 0;
        chunk = 0;
        bits = 0;
        Current = -1;
    }

    public static BitmapPages Of(ReadOnlySpan<byte> bitmap) => new(bitmap);

    /// <summary>How many pages are set (a population count, eight bytes at a time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a loop over every page, inside a downtime: optimised from its first call (why: PageBitmap, Ferry.Migration)
    public static long Count(ReadOnlySpan<byte> bitmap)
    {
        long count = 0;
        var i = 0;
        for (; bitmap.Length - i >= 8; i += 8) count += BitOperations.PopCount(BinaryPrimitives.ReadUInt64LittleEndian(bitmap[i..]));
        for (; i < bitmap.Length; i++) count += BitOperations.PopCount(bitmap[i]);
        return count;
    }

    /// <summary>The highest page set, or -1 if none is.</summary>
    public static long Last(ReadOnlySpan<byte> bitmap)
    {
        var i = bitmap.LastIndexOfAnyExcept((byte)0);
        return i < 0 ? -1 : ((long)i << 3) + 31 - BitOperations.LeadingZeroCount((uint)bitmap[i]);
    }

    public readonly BitmapPages GetEnumerator() => this;

    public long Current { get; private set; }

    public bool MoveNext()
    {
        while (bits == 0)
        {
            if (next >= bitmap.Length) return false;
            chunk = (long)next << 3;
            if (bitmap.Length - next >= 8)
            {
                bits = BinaryPrimitives.ReadUInt64LittleEndian(bitmap[next..]);
                next += 8;
            }
            else
            {
                bits = bitmap[next++];
            }
        }
        Current = chunk + BitOperations.TrailingZeroCount(bits);
        bits &= bits - 1;
        return true;
    }
}
