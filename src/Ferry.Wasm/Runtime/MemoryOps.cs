using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// Effective-address computation with the bounds check, called from compiled code and inlined by the JIT.
/// Keeping the check in a helper keeps the emitted IL free of branches, so values may stay on the IL
/// evaluation stack across memory accesses.
/// </summary>
public static unsafe class MemoryOps
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void FetchMissing(InstanceBase ctx, ulong ea, ulong n) => ctx.MissingPages!.EnsurePresent(ea, n);

    /// <summary>
    /// Bulk operations make whole ranges present first while a post-copy migration still delivers pages (compiler
    /// method: the present-page map; kernel method: populated from a system call, so a GC is never blocked behind a
    /// page fault taken in runtime code). No-op otherwise.
    /// </summary>
    public static void EnsurePresent(InstanceBase ctx, ulong start, ulong length)
    {
        if (length > 0) ctx.Memory0?.Presence?.EnsurePresent(start, length);
    }

    /// <summary>Marks a whole range dirty (bulk memory operations under write tracking).</summary>
    public static void MarkDirty(byte* dirty, ulong start, ulong length)
    {
        if (dirty == null || length == 0) return;
        for (var p = start >> 12; p <= (start + length - 1) >> 12; p++) dirty[p] = 1;
    }

    // ---- bulk memory (operands first, in WebAssembly order, then the instance, so compiled code needs no temporaries) ----

    public static void Fill32(int dest, int value, int length, InstanceBase ctx) => Fill((uint)dest, value, (uint)length, ctx);
    public static void Fill64(long dest, int value, long length, InstanceBase ctx) => Fill((ulong)dest, value, (ulong)length, ctx);
    public static void Copy32(int dest, int src, int length, InstanceBase ctx) => Copy((uint)dest, (uint)src, (uint)length, ctx);
    public static void Copy64(long dest, long src, long length, InstanceBase ctx) => Copy((ulong)dest, (ulong)src, (ulong)length, ctx);
    public static void Init32(int dest, int src, int length, int segment, InstanceBase ctx) => Init((uint)dest, (uint)src, (uint)length, segment, ctx);
    public static void Init64(long dest, int src, int length, int segment, InstanceBase ctx) => Init((ulong)dest, (uint)src, (uint)length, segment, ctx);

    public static void Fill(ulong dest, int value, ulong length, InstanceBase ctx)
    {
        var m = ctx.Memory0!;
        if (dest > m.Size || length > m.Size - dest) Trap.OutOfBoundsMemory();
        EnsurePresent(ctx, dest, length);
        MarkDirty(ctx.DirtyPages, dest, length);
        var p = m.Base + dest;
        while (length > 0)
        {
            var chunk = (int)Math.Min(length, int.MaxValue);
            new Span<byte>(p, chunk).Fill((byte)value);
            p += chunk;
            length -= (ulong)chunk;
        }
    }

    public static void Copy(ulong dest, ulong src, ulong length, InstanceBase ctx)
    {
        var m = ctx.Memory0!;
        if (dest > m.Size || length > m.Size - dest || src > m.Size || length > m.Size - src) Trap.OutOfBoundsMemory();
        EnsurePresent(ctx, src, length);
        EnsurePresent(ctx, dest, length);
        MarkDirty(ctx.DirtyPages, dest, length);
        Buffer.MemoryCopy(m.Base + src, m.Base + dest, m.Size - dest, length);
    }

    public static void Init(ulong dest, uint src, uint length, int segment, InstanceBase ctx)
    {
        var m = ctx.Memory0!;
        var data = ctx.DataSegments[segment];
        var dataLength = (ulong)(data?.Length ?? 0);
        if ((ulong)src + length > dataLength || dest > m.Size || length > m.Size - dest) Trap.OutOfBoundsMemory();
        if (length == 0) return;
        EnsurePresent(ctx, dest, length);
        MarkDirty(ctx.DirtyPages, dest, length);
        data.AsSpan((int)src, (int)length).CopyTo(new Span<byte>(m.Base + dest, (int)length));
    }

    public static void DropData(int segment, InstanceBase ctx) => ctx.DataSegments[segment] = null;

    public static int Grow32(int deltaPages, InstanceBase ctx) => (int)ctx.Memory0!.Grow((uint)deltaPages);

    public static long Grow64(long deltaPages, InstanceBase ctx) => deltaPages < 0 ? -1 : ctx.Memory0!.Grow((ulong)deltaPages);
}
