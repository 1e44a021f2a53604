using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Runtime;

/// <summary>Evaluates validated constant expressions during instantiation.</summary>
internal static class ConstEval
{
    public static WasmValue Evaluate(ConstExpr expr, Func<int, WasmValue> global, Func<int, FuncRef> function)
    {
        var r = new InstructionReader(expr.Code.Span, expr.Offset, false, "constant expression");
        var ins = default(Instruction);
        var result = default(WasmValue);
        while (!r.AtEnd)
        {
            r.Read(ref ins);
            result = ins.Opcode switch
            {
                0x41 => WasmValue.FromI32(ins.I32),
                0x42 => WasmValue.FromI64(ins.I64),
                0x43 => WasmValue.FromF32Bits((uint)ins.Bits),
                0x44 => WasmValue.FromF64Bits(ins.Bits),
                Opcodes.SimdBase + 0x0C => WasmValue.FromV128(ins.Bits, ins.BitsHigh),
                0xD0 => WasmValue.FromRef(ins.Type, null),
                0xD2 => WasmValue.FromRef(ValueType.FuncRef, function((int)ins.Index)),
                0x23 => global((int)ins.Index),
                _ => result,
            };
        }
        return result;
    }
}
