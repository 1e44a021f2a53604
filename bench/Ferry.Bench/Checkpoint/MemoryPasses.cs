using System.Diagnostics;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// The two passes over memory a snapshot write makes besides the copy to the file, each timed on its own, to show
/// where the writer's time goes relative to a plain copy.
/// </summary>
public static unsafe class MemoryPasses
{
    private const int PageSize = 4096;
    private const int Chunk = 1 << 20;

    /// <summary>Tests every 4 KiB page for all-zero, as SnapshotWriter does; ms.</summary>
    public static double ZeroScan(LinearMemory memory)
    {
        var sw = Stopwatch.StartNew();
        long nonZero = 0;
        for (long off = 0; off < (long)memory.Size; off += PageSize)
        {
            if (new ReadOnlySpan<byte>(memory.Base + off, PageSize).IndexOfAnyExcept((byte)0) >= 0) nonZero++;
        }
        var ms = sw.Elapsed.TotalMilliseconds;
        GC.KeepAlive(nonZero);
        return ms;
    }

    /// <summary>XXH64 of the whole memory in 1 MiB appends, as the writer feeds its checksum; ms.</summary>
    public static double Hash(LinearMemory memory)
    {
        var sw = Stopwatch.StartNew();
        var hash = new XxHash64();
        for (long off = 0; off < (long)memory.Size; off += Chunk)
        {
            hash.Append(new ReadOnlySpan<byte>(memory.Base + off, (int)Math.Min(Chunk, (long)memory.Size - off)));
        }
        var digest = hash.Digest();
        var ms = sw.Elapsed.TotalMilliseconds;
        GC.KeepAlive(digest);
        return ms;
    }
}
