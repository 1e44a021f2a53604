using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// A global that is shared between instances (imported or exported). Only the field matching
/// <see cref="Type"/> is used; compiled code reads and writes it directly.
/// </summary>
public sealed class GlobalCell
{
    public int I32;
    public long I64;
    public float F32;
    public double F64;
    public Vector128<byte> V128;
    public object? Ref;

    public GlobalCell(GlobalType type) => Type = type;

    public GlobalType Type { get; }

    public WasmValue Value
    {
        get => Type.Type switch
        {
            ValueType.I32 => WasmValue.FromI32(I32),
            ValueType.I64 => WasmValue.FromI64(I64),
            ValueType.F32 => WasmValue.FromF32(F32),
            ValueType.F64 => WasmValue.FromF64(F64),
            ValueType.V128 => WasmValue.FromV128(V128),
            _ => WasmValue.FromRef(Type.Type, Ref),
        };
        set
        {
            switch (Type.Type)
            {
                case ValueType.I32: I32 = value.I32; break;
                case ValueType.I64: I64 = value.I64; break;
                case ValueType.F32: F32 = value.F32; break;
                case ValueType.F64: F64 = value.F64; break;
                case ValueType.V128: V128 = value.V128; break;
                default: Ref = value.Ref; break;
            }
        }
    }
}
