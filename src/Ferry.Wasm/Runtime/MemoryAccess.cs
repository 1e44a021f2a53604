using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// What compiled code needs to reach linear memory, in one struct local: base, current size, and the tracking
/// maps. Passing it by value to the inlined access helpers lets the JIT keep all four in registers, and costs one
/// IL local reference per access (RyuJIT gives up optimising methods with more than 8,000 of them).
/// </summary>
public unsafe struct MemView
{
    public byte* Base;
    public ulong Size;
    public byte* Dirty;
    public byte* Absent;

    /// <summary>The current view of an instance's memory (compiled code refreshes it after memory may have grown).</summary>
    public static MemView Of(InstanceBase ctx)
    {
        var m = ctx.Memory0!;
        return new MemView { Base = m.Base, Size = m.Size, Dirty = ctx.DirtyPages, Absent = ctx.AbsentPages };
    }
}

/// <summary>
/// Effective-address helpers for 32-bit memories (bounds check, dirty marking, presence check); the typed
/// accesses are in <see cref="Mem32{T}"/>. One helper per access keeps the emitted IL small; the JIT inlines them.
/// </summary>
public static unsafe class Mem32
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Addr(int addr, MemView m, ulong offset, ulong n)
    {
        // No local for the effective address on purpose: every local of an inlined helper becomes a JIT local of
        // the compiled function, and RyuJIT stops inlining in a method once it has 512 of them. Large functions
        // (a C program's main with everything inlined into it) then kept hundreds of these helpers as real calls.
        if ((ulong)(uint)addr + offset + n > m.Size) throw TrapFactory.OutOfBoundsMemory();
        return m.Base + ((ulong)(uint)addr + offset);
    }

    /// <summary>Address of a store under write tracking: marks the page(s) in the dirty map.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* AddrDirty(int addr, MemView m, ulong offset, ulong n)
    {
        // Written out without a local for the effective address, as in Addr (the JIT's CSE still computes it once).
        if ((ulong)(uint)addr + offset + n > m.Size) throw TrapFactory.OutOfBoundsMemory();
        m.Dirty[((ulong)(uint)addr + offset) >> 12] = 1;
        m.Dirty[((ulong)(uint)addr + offset + n - 1) >> 12] = 1;
        return m.Base + ((ulong)(uint)addr + offset);
    }

    /// <summary>Address with a presence check (post-copy destination): missing pages are fetched first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* AddrPresent(int addr, MemView m, ulong offset, ulong n, InstanceBase ctx)
    {
        if ((ulong)(uint)addr + offset + n > m.Size) throw TrapFactory.OutOfBoundsMemory();
        if ((m.Absent[((ulong)(uint)addr + offset) >> 12] | m.Absent[((ulong)(uint)addr + offset + n - 1) >> 12]) != 0)
        {
            MemoryOps.FetchMissing(ctx, (ulong)(uint)addr + offset, n);
        }
        return m.Base + ((ulong)(uint)addr + offset);
    }
}

/// <summary>The same for 64-bit memories, where address + offset may overflow.</summary>
public static unsafe class Mem64
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Addr(long addr, MemView m, ulong offset, ulong n)
    {
        var ea = (ulong)addr + offset;
        if (ea < offset || ea > m.Size || m.Size - ea < n) throw TrapFactory.OutOfBoundsMemory();
        return m.Base + ea;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* AddrDirty(long addr, MemView m, ulong offset, ulong n)
    {
        var p = Addr(addr, m, offset, n);
        var ea = (ulong)(p - m.Base);
        m.Dirty[ea >> 12] = 1;
        m.Dirty[(ea + n - 1) >> 12] = 1;
        return p;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* AddrPresent(long addr, MemView m, ulong offset, ulong n, InstanceBase ctx)
    {
        var p = Addr(addr, m, offset, n);
        var ea = (ulong)(p - m.Base);
        if ((m.Absent[ea >> 12] | m.Absent[(ea + n - 1) >> 12]) != 0) MemoryOps.FetchMissing(ctx, ea, n);
        return p;
    }
}

/// <summary>
/// Typed loads and stores of 32-bit memories (i32.load8_s is <c>Mem32&lt;sbyte&gt;.Load</c>: the IL stack widens
/// small integers itself). Generic over the class rather than the method on purpose: compiled code calls these
/// through one cached metadata token per instantiation (<see cref="Compilation.MemberTokens"/>), whereas every
/// emitted call to a generic <em>method</em> instantiation costs Reflection.Emit a new MethodSpec and signature.
/// </summary>
public static unsafe class Mem32<T> where T : unmanaged
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Load(int addr, MemView m, ulong offset) =>
        Unsafe.ReadUnaligned<T>(Mem32.Addr(addr, m, offset, (ulong)sizeof(T)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(int addr, T value, MemView m, ulong offset) =>
        Unsafe.WriteUnaligned(Mem32.Addr(addr, m, offset, (ulong)sizeof(T)), value);

    /// <summary>Store with compiler-based write tracking: marks the page(s) written in the dirty map.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreDirty(int addr, T value, MemView m, ulong offset)
    {
        // No effective-address local (see Mem32.Addr): tracked builds of large functions must not run out of inlining.
        if ((ulong)(uint)addr + offset + (ulong)sizeof(T) > m.Size) throw TrapFactory.OutOfBoundsMemory();
        m.Dirty[((ulong)(uint)addr + offset) >> 12] = 1;
        m.Dirty[((ulong)(uint)addr + offset + (ulong)sizeof(T) - 1) >> 12] = 1;
        Unsafe.WriteUnaligned(m.Base + ((ulong)(uint)addr + offset), value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T LoadPresent(int addr, MemView m, ulong offset, InstanceBase ctx) =>
        Unsafe.ReadUnaligned<T>(Mem32.AddrPresent(addr, m, offset, (ulong)sizeof(T), ctx));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePresent(int addr, T value, MemView m, ulong offset, InstanceBase ctx) =>
        Unsafe.WriteUnaligned(Mem32.AddrPresent(addr, m, offset, (ulong)sizeof(T), ctx), value);
}

/// <summary>The same for 64-bit memories.</summary>
public static unsafe class Mem64<T> where T : unmanaged
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Load(long addr, MemView m, ulong offset) =>
        Unsafe.ReadUnaligned<T>(Mem64.Addr(addr, m, offset, (ulong)sizeof(T)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(long addr, T value, MemView m, ulong offset) =>
        Unsafe.WriteUnaligned(Mem64.Addr(addr, m, offset, (ulong)sizeof(T)), value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreDirty(long addr, T value, MemView m, ulong offset)
    {
        var p = Mem64.Addr(addr, m, offset, (ulong)sizeof(T));
        var ea = (ulong)(p - m.Base);
        m.Dirty[ea >> 12] = 1;
        m.Dirty[(ea + (ulong)sizeof(T) - 1) >> 12] = 1;
        Unsafe.WriteUnaligned(p, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T LoadPresent(long addr, MemView m, ulong offset, InstanceBase ctx) =>
        Unsafe.ReadUnaligned<T>(Mem64.AddrPresent(addr, m, offset, (ulong)sizeof(T), ctx));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePresent(long addr, T value, MemView m, ulong offset, InstanceBase ctx) =>
        Unsafe.WriteUnaligned(Mem64.AddrPresent(addr, m, offset, (ulong)sizeof(T), ctx), value);
}
