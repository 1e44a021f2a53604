using System.Buffers.Binary;
using System.Text;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Snapshots;

/// <summary>
/// Little-endian, host-independent encoding of execution state: values, frames, globals, tables and segment
/// flags. Shared by snapshot files and the migration protocol. References to functions are written as function
/// indices of the owning instance, never as pointers.
/// </summary>
public static class StateCodec
{
    // ---- writing ----

    public static void WriteValue(BinaryWriter w, WasmValue v, Instance owner)
    {
        w.Write((byte)v.Type);
        switch (v.Type)
        {
            case ValueType.I32:
            case ValueType.F32:
                w.Write((uint)v.Lo);
                break;
            case ValueType.I64:
            case ValueType.F64:
                w.Write(v.Lo);
                break;
            case ValueType.V128:
                w.Write(v.Lo);
                w.Write(v.Hi);
                break;
            case ValueType.FuncRef:
                w.Write(FunctionIndexOf(v.Ref, owner));
                break;
            case ValueType.ExternRef:
                if (v.Ref is not null) throw new SnapshotFormatException("cannot snapshot a non-null externref: host references do not survive a move");
                w.Write(-1);
                break;
            default:
                throw new SnapshotFormatException($"unknown value type {v.Type}");
        }
    }

    /// <summary>The index of a function reference in <paramref name="owner"/>'s function space (-1 for null).</summary>
    private static int FunctionIndexOf(object? reference, Instance owner)
    {
        if (reference is null) return -1;
        if (reference is FuncRef f)
        {
            if (ReferenceEquals(f.Owner, owner)) return f.FunctionIndex;
            var functions = owner.State.Functions;
            for (var i = 0; i < owner.Module.ImportedFunctionCount; i++)
            {
                if (ReferenceEquals(functions[i], f)) return i;
            }
        }
        throw new SnapshotFormatException("cannot snapshot a reference to a function of another instance");
    }

    public static void WriteFrames(BinaryWriter w, IReadOnlyList<FrameRecord> frames, Instance owner)
    {
        w.Write(frames.Count);
        foreach (var f in frames)
        {
            w.Write(f.FunctionIndex);
            w.Write(f.SafePoint);
            w.Write(f.Locals.Length);
            foreach (var (index, value) in f.Locals)
            {
                w.Write(index);
                WriteValue(w, value, owner);
            }
            w.Write(f.Stack.Length);
            foreach (var v in f.Stack) WriteValue(w, v, owner);
        }
    }

    public static void WriteGlobals(BinaryWriter w, Instance instance)
    {
        var n = instance.Module.GlobalTypes.Length;
        w.Write(n);
        for (var i = 0; i < n; i++) WriteValue(w, instance.GetGlobal(i), instance);
    }

    public static void WriteTables(BinaryWriter w, Instance instance)
    {
        var tables = instance.State.Tables;
        w.Write(tables.Length);
        foreach (var t in tables)
        {
            w.Write((byte)t.ElementType);
            w.Write(t.Size);
            w.Write(t.Max ?? uint.MaxValue);
            foreach (var e in t.Elements)
            {
                if (t.ElementType == ValueType.FuncRef) w.Write(FunctionIndexOf(e, instance));
                else if (e is null) w.Write(-1);
                else throw new SnapshotFormatException("cannot snapshot a table holding host references");
            }
        }
    }

    public static void WriteSegments(BinaryWriter w, Instance instance)
    {
        var data = instance.State.DataSegments;
        w.Write(data.Length);
        foreach (var d in data) w.Write(d is null ? (byte)1 : (byte)0);
        var elems = instance.State.ElementSegments;
        w.Write(elems.Length);
        foreach (var e in elems) w.Write(e is null ? (byte)1 : (byte)0);
    }

    public static void WriteModule(BinaryWriter w, ReadOnlySpan<byte> moduleHash, long moduleSize, string? name)
    {
        w.Write(moduleHash);
        w.Write(moduleSize);
        WriteString(w, name ?? "");
    }

    public static void WriteMetadata(BinaryWriter w, IReadOnlyDictionary<string, string> metadata)
    {
        w.Write(metadata.Count);
        foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            WriteString(w, k);
            WriteString(w, v);
        }
    }

    public static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write(bytes.Length);
        w.Write(bytes);
    }

    // ---- reading ----

    /// <summary>Bounds-checked little-endian reader over a record's bytes.</summary>
    public ref struct Reader(ReadOnlySpan<byte> data, string what)
    {
        private readonly ReadOnlySpan<byte> data = data;
        private int pos;

        public readonly bool AtEnd => pos == data.Length;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > data.Length - pos) throw new SnapshotFormatException($"{what}: truncated record");
            var s = data.Slice(pos, n);
            pos += n;
            return s;
        }

        public byte U8() => Take(1)[0];
        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public ReadOnlySpan<byte> Bytes(int n) => Take(n);

        /// <summary>A count of items each at least <paramref name="minItemBytes"/> long, bounded by the bytes left.</summary>
        public int Count(int minItemBytes)
        {
            var n = I32();
            if (n < 0 || (long)n * minItemBytes > data.Length - pos) throw new SnapshotFormatException($"{what}: bad count {n}");
            return n;
        }

        public string String()
        {
            var n = Count(1);
            return Encoding.UTF8.GetString(Take(n));
        }

        public readonly void ExpectEnd()
        {
            if (pos != data.Length) throw new SnapshotFormatException($"{what}: {data.Length - pos} unexpected trailing bytes");
        }
    }

    /// <summary>A value whose function references are still indices; resolved against an instance with <see cref="Resolve"/>.</summary>
    public static WasmValue ReadValue(ref Reader r)
    {
        var type = (ValueType)r.U8();
        return type switch
        {
            ValueType.I32 => WasmValue.FromI32(r.I32()),
            ValueType.F32 => WasmValue.FromF32Bits(r.U32()),
            ValueType.I64 => WasmValue.FromI64(r.I64()),
            ValueType.F64 => WasmValue.FromF64Bits(r.U64()),
            ValueType.V128 => WasmValue.FromV128(r.U64(), r.U64()),
            ValueType.FuncRef => r.I32() is var i && i < 0 ? WasmValue.FromRef(ValueType.FuncRef, null) : WasmValue.FromRef(ValueType.FuncRef, new FunctionIndex(i)),
            ValueType.ExternRef => r.I32() < 0 ? WasmValue.FromRef(ValueType.ExternRef, null) : throw new SnapshotFormatException("non-null externref in snapshot"),
            _ => throw new SnapshotFormatException($"unknown value type 0x{(byte)type:x2}"),
        };
    }

    /// <summary>A function reference as stored in a snapshot, before it is bound to an instance.</summary>
    public sealed record FunctionIndex(int Index);

    public static WasmValue Resolve(WasmValue v, Instance instance)
    {
        if (v.Ref is not FunctionIndex fi) return v;
        var functions = instance.State.Functions;
        if ((uint)fi.Index >= (uint)functions.Length) throw new SnapshotFormatException($"function reference {fi.Index} out of range");
        return WasmValue.FromRef(ValueType.FuncRef, functions[fi.Index]);
    }

    public static FrameRecord[] ReadFrames(ref Reader r)
    {
        var n = r.Count(12);
        var frames = new FrameRecord[n];
        for (var k = 0; k < n; k++)
        {
            var function = r.I32();
            var safePoint = r.I32();
            var nl = r.Count(6);
            var locals = new LocalValue[nl];
            for (var i = 0; i < nl; i++)
            {
                var index = r.I32();
                locals[i] = new LocalValue(index, ReadValue(ref r));
            }
            var ns = r.Count(2);
            var stack = new WasmValue[ns];
            for (var i = 0; i < ns; i++) stack[i] = ReadValue(ref r);
            frames[k] = new FrameRecord(function, safePoint, locals, stack);
        }
        return frames;
    }

    /// <summary>
    /// The frames with their references resolved against <paramref name="instance"/>. Plain loops: a migration's
    /// destination runs this while the guest is frozen, and LINQ here compiled four generic methods over
    /// <see cref="LocalValue"/> on the first migration into a process (seen in FERRY_TRACE's jit= counts).
    /// </summary>
    public static FrameRecord[] ResolveFrames(FrameRecord[] frames, Instance instance)
    {
        var resolved = new FrameRecord[frames.Length];
        for (var k = 0; k < frames.Length; k++)
        {
            var f = frames[k];
            var locals = new LocalValue[f.Locals.Length];
            for (var i = 0; i < locals.Length; i++) locals[i] = new LocalValue(f.Locals[i].Index, Resolve(f.Locals[i].Value, instance));
            var stack = new WasmValue[f.Stack.Length];
            for (var i = 0; i < stack.Length; i++) stack[i] = Resolve(f.Stack[i], instance);
            resolved[k] = new FrameRecord(f.FunctionIndex, f.SafePoint, locals, stack);
        }
        return resolved;
    }

    public static WasmValue[] ReadGlobals(ref Reader r)
    {
        var n = r.Count(2);
        var values = new WasmValue[n];
        for (var i = 0; i < n; i++) values[i] = ReadValue(ref r);
        return values;
    }

    /// <summary>A table as stored: element type, limits and function indices (-1 = null).</summary>
    public sealed record TableImage(ValueType ElementType, uint? Max, int[] Elements);

    public static TableImage[] ReadTables(ref Reader r)
    {
        var n = r.Count(9);
        var tables = new TableImage[n];
        for (var i = 0; i < n; i++)
        {
            var type = (ValueType)r.U8();
            var size = r.Count(4);
            var max = r.U32();
            var elements = new int[size];
            for (var k = 0; k < size; k++) elements[k] = r.I32();
            tables[i] = new TableImage(type, max == uint.MaxValue ? null : max, elements);
        }
        return tables;
    }

    public static (bool[] DroppedData, bool[] DroppedElements) ReadSegments(ref Reader r)
    {
        var nd = r.Count(1);
        var data = new bool[nd];
        for (var i = 0; i < nd; i++) data[i] = r.U8() != 0;
        var ne = r.Count(1);
        var elems = new bool[ne];
        for (var i = 0; i < ne; i++) elems[i] = r.U8() != 0;
        return (data, elems);
    }

    public static Dictionary<string, string> ReadMetadata(ref Reader r)
    {
        var n = r.Count(8);
        var d = new Dictionary<string, string>(n, StringComparer.Ordinal);
        for (var i = 0; i < n; i++) d[r.String()] = r.String();
        return d;
    }
}
