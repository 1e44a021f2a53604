using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Runtime;

/// <summary>A typed WebAssembly value as the host sees it (arguments, results, globals).</summary>
public readonly struct WasmValue : IEquatable<WasmValue>
{
    private WasmValue(ValueType type, ulong lo, ulong hi, object? reference)
    {
        Type = type;
        Lo = lo;
        Hi = hi;
        Ref = reference;
    }

    public ValueType Type { get; }
    /// <summary>Raw bits: the value for i32/i64/f32/f64, the low half of a v128.</summary>
    public ulong Lo { get; }
    public ulong Hi { get; }
    public object? Ref { get; }

    public int I32 => unchecked((int)Lo);
    public long I64 => unchecked((long)Lo);
    public float F32 => BitConverter.Int32BitsToSingle(unchecked((int)Lo));
    public double F64 => BitConverter.Int64BitsToDouble(unchecked((long)Lo));
    public Vector128<byte> V128 => Vector128.Create(Lo, Hi).AsByte();

    public static WasmValue FromI32(int v) => new(ValueType.I32, unchecked((uint)v), 0, null);
    public static WasmValue FromI64(long v) => new(ValueType.I64, unchecked((ulong)v), 0, null);
    public static WasmValue FromF32(float v) => new(ValueType.F32, unchecked((uint)BitConverter.SingleToInt32Bits(v)), 0, null);
    public static WasmValue FromF32Bits(uint bits) => new(ValueType.F32, bits, 0, null);
    public static WasmValue FromF64(double v) => new(ValueType.F64, unchecked((ulong)BitConverter.DoubleToInt64Bits(v)), 0, null);
    public static WasmValue FromF64Bits(ulong bits) => new(ValueType.F64, bits, 0, null);
    public static WasmValue FromV128(Vector128<byte> v)
    {
        var u = v.AsUInt64();
        return new(ValueType.V128, u.GetElement(0), u.GetElement(1), null);
    }
    public static WasmValue FromV128(ulong lo, ulong hi) => new(ValueType.V128, lo, hi, null);
    public static WasmValue FromRef(ValueType type, object? reference) => new(type, 0, 0, reference);
    public static WasmValue Default(ValueType type) => new(type, 0, 0, null);

    public bool Equals(WasmValue other) => Type == other.Type && Lo == other.Lo && Hi == other.Hi && ReferenceEquals(Ref, other.Ref);
    public override bool Equals(object? obj) => obj is WasmValue v && Equals(v);
    public override int GetHashCode() => HashCode.Combine(Type, Lo, Hi);
    public static bool operator ==(WasmValue a, WasmValue b) => a.Equals(b);
    public static bool operator !=(WasmValue a, WasmValue b) => !a.Equals(b);

    public override string ToString() => Type switch
    {
        ValueType.I32 => $"i32:{I32}",
        ValueType.I64 => $"i64:{I64}",
        ValueType.F32 => $"f32:{F32:R}",
        ValueType.F64 => $"f64:{F64:R}",
        ValueType.V128 => $"v128:{Hi:x16}{Lo:x16}",
        _ => $"{Type.Name()}:{Ref?.ToString() ?? "null"}",
    };
}
