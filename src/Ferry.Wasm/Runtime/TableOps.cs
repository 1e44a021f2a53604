namespace Ferry.Wasm.Runtime;

/// <summary>
/// Table instructions, called from compiled code. Parameters come in WebAssembly operand order, then the
/// immediates, then the instance, so compiled code pushes nothing beneath the operands.
/// </summary>
public static class TableOps
{
    public static object? Get(int index, int table, InstanceBase ctx)
    {
        var e = ctx.Tables[table].Elements;
        if ((uint)index >= (uint)e.Length) Trap.OutOfBoundsTable();
        return e[index];
    }

    public static void Set(int index, object? value, int table, InstanceBase ctx)
    {
        var e = ctx.Tables[table].Elements;
        if ((uint)index >= (uint)e.Length) Trap.OutOfBoundsTable();
        e[index] = value;
    }

    public static int Size(int table, InstanceBase ctx) => (int)ctx.Tables[table].Size;

    public static int Grow(object? init, int delta, int table, InstanceBase ctx) => ctx.Tables[table].Grow((uint)delta, init);

    public static void Fill(int start, object? value, int length, int table, InstanceBase ctx)
    {
        var e = ctx.Tables[table].Elements;
        if ((ulong)(uint)start + (uint)length > (ulong)e.Length) Trap.OutOfBoundsTable();
        Array.Fill(e, value, start, length);
    }

    public static void Copy(int dest, int src, int length, int destTable, int srcTable, InstanceBase ctx)
    {
        var d = ctx.Tables[destTable].Elements;
        var s = ctx.Tables[srcTable].Elements;
        if ((ulong)(uint)src + (uint)length > (ulong)s.Length || (ulong)(uint)dest + (uint)length > (ulong)d.Length) Trap.OutOfBoundsTable();
        Array.Copy(s, src, d, dest, length);
    }

    public static void Init(int dest, int src, int length, int segment, int table, InstanceBase ctx)
    {
        var t = ctx.Tables[table].Elements;
        var seg = ctx.ElementSegments[segment] ?? [];
        if ((ulong)(uint)src + (uint)length > (ulong)seg.Length || (ulong)(uint)dest + (uint)length > (ulong)t.Length) Trap.OutOfBoundsTable();
        Array.Copy(seg, src, t, dest, length);
    }

    public static void DropElements(int segment, InstanceBase ctx) => ctx.ElementSegments[segment] = null;

    public static object RefFunc(int function, InstanceBase ctx) => ctx.Functions[function];
}
