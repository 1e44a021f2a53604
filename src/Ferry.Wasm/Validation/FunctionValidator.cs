using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Validation;

/// <summary>
/// Type-checks one function body with the operand/control stack algorithm of the spec's validation appendix.
/// Reused across functions of a module so its stacks are allocated once.
/// </summary>
internal sealed class FunctionValidator
{
    /// <summary>The "unknown" type of unreachable code: matches anything.</summary>
    private const ValueType Unknown = 0;

    private struct ControlFrame
    {
        public int Opcode;
        public ValueType[] StartTypes;
        public ValueType[] EndTypes;
        public int Height;
        public bool Unreachable;
    }

    private readonly ValidationContext ctx;
    private readonly Module module;
    private ValueType[] vals = new ValueType[64];
    private int valCount;
    private ControlFrame[] ctrls = new ControlFrame[16];
    private int ctrlCount;
    private ValueType[] locals = [];
    private int localCount;
    private int offset;
    private string where = "";

    public FunctionValidator(ValidationContext ctx)
    {
        this.ctx = ctx;
        module = ctx.Module;
    }

    [DoesNotReturn]
    private void Fail(string reason) => ValidationContext.Fail(reason, offset, where);

    public void Validate(int functionIndex)
    {
        var body = module.Bodies[functionIndex - module.ImportedFunctionCount];
        var type = module.FunctionType(functionIndex);
        where = $"function {functionIndex} ({module.FunctionName(functionIndex)})";
        localCount = type.Parameters.Length + body.LocalCount;
        if (locals.Length < localCount) locals = new ValueType[localCount];
        type.Parameters.CopyTo(locals, 0);
        var li = type.Parameters.Length;
        foreach (var g in body.Locals)
        {
            for (var k = 0; k < g.Count; k++) locals[li++] = g.Type;
        }

        valCount = 0;
        ctrlCount = 0;
        PushCtrl(0x02, [], type.Results);

        var memory64 = module.Memories.Length > 0 && module.Memories[0].Is64;
        var reader = new InstructionReader(body.Code.Span, body.CodeOffset, memory64, where);
        var ins = default(Instruction);
        while (ctrlCount > 0)
        {
            if (reader.AtEnd)
            {
                offset = reader.FileOffset;
                throw new MalformedModuleException("unexpected end of section or function", offset, where);
            }
            var info = reader.Read(ref ins);
            offset = ins.Offset;
            Step(info, ref ins, ref reader);
        }
        if (!reader.AtEnd)
        {
            throw new MalformedModuleException("operators remaining after end of function", reader.FileOffset, where);
        }
    }

    // ---- stack primitives -------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Push(ValueType t)
    {
        if (valCount == vals.Length) Array.Resize(ref vals, vals.Length * 2);
        vals[valCount++] = t;
    }

    private ValueType Pop()
    {
        ref var top = ref ctrls[ctrlCount - 1];
        if (valCount == top.Height)
        {
            if (top.Unreachable) return Unknown;
            Fail("type mismatch");
        }
        return vals[--valCount];
    }

    /// <summary>Pops a value of the expected type; returns what was popped (Unknown stays Unknown, as br_table needs).</summary>
    private ValueType Pop(ValueType expected)
    {
        var actual = Pop();
        if (actual != expected && actual != Unknown && expected != Unknown) Fail("type mismatch");
        return actual;
    }

    private void PushAll(ReadOnlySpan<ValueType> types)
    {
        foreach (var t in types) Push(t);
    }

    private void PopAll(ReadOnlySpan<ValueType> types)
    {
        for (var i = types.Length - 1; i >= 0; i--) Pop(types[i]);
    }

    private void PushCtrl(int opcode, ValueType[] start, ValueType[] end)
    {
        if (ctrlCount == ctrls.Length) Array.Resize(ref ctrls, ctrls.Length * 2);
        ctrls[ctrlCount++] = new ControlFrame { Opcode = opcode, StartTypes = start, EndTypes = end, Height = valCount, Unreachable = false };
        PushAll(start);
    }

    private ControlFrame PopCtrl()
    {
        if (ctrlCount == 0) Fail("type mismatch");
        var frame = ctrls[ctrlCount - 1];
        PopAll(frame.EndTypes);
        if (valCount != frame.Height) Fail("type mismatch");
        ctrlCount--;
        return frame;
    }

    private static ValueType[] LabelTypes(in ControlFrame f) => f.Opcode == 0x03 ? f.StartTypes : f.EndTypes;

    private void SetUnreachable()
    {
        ref var top = ref ctrls[ctrlCount - 1];
        valCount = top.Height;
        top.Unreachable = true;
    }

    private ref ControlFrame Label(uint depth)
    {
        if (depth >= (uint)ctrlCount) Fail("unknown label");
        return ref ctrls[ctrlCount - 1 - (int)depth];
    }

    // ---- module lookups ---------------------------------------------------------------------------

    private void BlockSignature(long blockType, out ValueType[] start, out ValueType[] end)
    {
        if (blockType == Instruction.EmptyBlock)
        {
            start = [];
            end = [];
        }
        else if (blockType < 0)
        {
            start = [];
            end = [(ValueType)(byte)(blockType + 0x80)];
        }
        else
        {
            if (blockType >= module.Types.Length) Fail("unknown type");
            var t = module.Types[(int)blockType];
            start = t.Parameters;
            end = t.Results;
        }
    }

    private MemoryType Memory(uint index)
    {
        if (index >= (uint)module.Memories.Length) Fail("unknown memory " + index);
        return module.Memories[(int)index];
    }

    private ValueType AddressType(uint memoryIndex) => Memory(memoryIndex).Is64 ? ValueType.I64 : ValueType.I32;

    private TableType Table(uint index)
    {
        if (index >= (uint)module.Tables.Length) Fail("unknown table " + index);
        return module.Tables[(int)index];
    }

    private ValueType Local(uint index)
    {
        if (index >= (uint)localCount) Fail("unknown local " + index);
        return locals[index];
    }

    private GlobalType GlobalAt(uint index)
    {
        if (index >= (uint)module.GlobalTypes.Length) Fail("unknown global " + index);
        return module.GlobalTypes[(int)index];
    }

    private void CheckDataIndex(uint index)
    {
        if (module.DataCount is not { } count)
        {
            // The spec's decoder needs the count only when the module has data to refer to.
            if (module.Data.Length > 0) throw new MalformedModuleException("data count section required", offset, where);
            count = 0;
        }
        if (index >= (uint)count) Fail("unknown data segment " + index);
    }

    private ElementSegment ElementAt(uint index)
    {
        if (index >= (uint)module.Elements.Length) Fail("unknown elem segment " + index);
        return module.Elements[(int)index];
    }

    private void CheckAlignment(in Instruction ins, int accessSize)
    {
        if (ins.Align >= 32 || (1L << (int)ins.Align) > accessSize) Fail("alignment must not be larger than natural");
    }

    private static bool IsNumOrVec(ValueType t) => t is ValueType.I32 or ValueType.I64 or ValueType.F32 or ValueType.F64 or ValueType.V128 or Unknown;

    private ValueType Resolve(ValueType t, uint memoryIndex) => t == Opcodes.Address ? AddressType(memoryIndex) : t;

    // ---- one instruction --------------------------------------------------------------------------

    private void Step(OpInfo info, ref Instruction ins, ref InstructionReader reader)
    {
        switch (info.Immediate)
        {
            case Immediate.MemArg:
            case Immediate.MemArgLane:
                {
                    var at = AddressType(0);
                    if (!Memory(0).Is64 && ins.MemOffset > uint.MaxValue) Fail("offset out of range");
                    CheckAlignment(ins, info.AccessSize);
                    if (info.Immediate == Immediate.MemArgLane && ins.Lane >= 16 / info.AccessSize) Fail("invalid lane index");
                    for (var i = info.Pops!.Length - 1; i >= 0; i--) Pop(info.Pops[i] == Opcodes.Address ? at : info.Pops[i]);
                    foreach (var t in info.Pushes!) Push(t);
                    return;
                }
            case Immediate.Lane:
                if (ins.Lane >= info.AccessSize) Fail("invalid lane index");
                break;
            case Immediate.Shuffle:
                for (var i = 0; i < 8; i++)
                {
                    if (((ins.Bits >> (8 * i)) & 0xFF) >= 32 || ((ins.BitsHigh >> (8 * i)) & 0xFF) >= 32) Fail("invalid lane index");
                }
                break;
        }

        if (info.IsSimple && info.Immediate is not (Immediate.Memory))
        {
            for (var i = info.Pops!.Length - 1; i >= 0; i--) Pop(info.Pops[i]);
            foreach (var t in info.Pushes!) Push(t);
            return;
        }

        switch (ins.Opcode)
        {
            case 0x00: // unreachable
                SetUnreachable();
                break;
            case 0x02: // block
            case 0x03: // loop
                {
                    BlockSignature(ins.BlockType, out var start, out var end);
                    PopAll(start);
                    PushCtrl(ins.Opcode, start, end);
                    break;
                }
            case 0x04: // if
                {
                    BlockSignature(ins.BlockType, out var start, out var end);
                    Pop(ValueType.I32);
                    PopAll(start);
                    PushCtrl(0x04, start, end);
                    break;
                }
            case 0x05: // else
                {
                    if (ctrlCount == 0 || ctrls[ctrlCount - 1].Opcode != 0x04) Fail("else without if");
                    var frame = PopCtrl();
                    PushCtrl(0x05, frame.StartTypes, frame.EndTypes);
                    break;
                }
            case 0x0B: // end
                {
                    var frame = PopCtrl();
                    if (frame.Opcode == 0x04)
                    {
                        // An if without else behaves as if its else passed the parameters through.
                        PushCtrl(0x05, frame.StartTypes, frame.EndTypes);
                        PopCtrl();
                    }
                    PushAll(frame.EndTypes);
                    break;
                }
            case 0x0C: // br
                PopAll(LabelTypes(Label(ins.Index)));
                SetUnreachable();
                break;
            case 0x0D: // br_if
                {
                    Pop(ValueType.I32);
                    var types = LabelTypes(Label(ins.Index));
                    PopAll(types);
                    PushAll(types);
                    break;
                }
            case 0x0E: // br_table
                {
                    Pop(ValueType.I32);
                    var targets = reader.BrTableTargets;
                    var defaultTypes = LabelTypes(Label(targets[^1]));
                    var arity = defaultTypes.Length;
                    for (var i = 0; i < targets.Length - 1; i++)
                    {
                        var types = LabelTypes(Label(targets[i]));
                        if (types.Length != arity) Fail("type mismatch");
                        // Check the operands against this label without consuming them.
                        var popped = new ValueType[types.Length];
                        for (var k = types.Length - 1; k >= 0; k--) popped[k] = Pop(types[k]);
                        PushAll(popped);
                    }
                    PopAll(defaultTypes);
                    SetUnreachable();
                    break;
                }
            case 0x0F: // return
                PopAll(ctrls[0].EndTypes);
                SetUnreachable();
                break;
            case 0x10: // call
                {
                    if (ins.Index >= (uint)module.FunctionCount) Fail("unknown function " + ins.Index);
                    var t = module.FunctionType((int)ins.Index);
                    PopAll(t.Parameters);
                    PushAll(t.Results);
                    break;
                }
            case 0x11: // call_indirect
                {
                    var table = Table(ins.Index2);
                    if (table.ElementType != ValueType.FuncRef) Fail("type mismatch");
                    if (ins.Index >= (uint)module.Types.Length) Fail("unknown type");
                    Pop(ValueType.I32);
                    var t = module.Types[(int)ins.Index];
                    PopAll(t.Parameters);
                    PushAll(t.Results);
                    break;
                }
            case 0x1A: // drop
                Pop();
                break;
            case 0x1B: // select (untyped: numeric or vector operands only)
                {
                    Pop(ValueType.I32);
                    var t1 = Pop();
                    var t2 = Pop();
                    if (!IsNumOrVec(t1) || !IsNumOrVec(t2)) Fail("type mismatch");
                    if (t1 != t2 && t1 != Unknown && t2 != Unknown) Fail("type mismatch");
                    Push(t1 == Unknown ? t2 : t1);
                    break;
                }
            case 0x1C: // select t
                if (ins.TypeCount != 1) Fail("invalid result arity");
                Pop(ValueType.I32);
                Pop(ins.Type);
                Pop(ins.Type);
                Push(ins.Type);
                break;
            case 0x20: Push(Local(ins.Index)); break;
            case 0x21: Pop(Local(ins.Index)); break;
            case 0x22:
                {
                    var t = Local(ins.Index);
                    Pop(t);
                    Push(t);
                    break;
                }
            case 0x23: Push(GlobalAt(ins.Index).Type); break;
            case 0x24:
                {
                    var g = GlobalAt(ins.Index);
                    if (!g.Mutable) Fail("global is immutable");
                    Pop(g.Type);
                    break;
                }
            case 0x25: // table.get
                {
                    var t = Table(ins.Index);
                    Pop(ValueType.I32);
                    Push(t.ElementType);
                    break;
                }
            case 0x26: // table.set
                {
                    var t = Table(ins.Index);
                    Pop(t.ElementType);
                    Pop(ValueType.I32);
                    break;
                }
            case 0x3F: // memory.size
                Push(AddressType(ins.Index));
                break;
            case 0x40: // memory.grow
                {
                    var at = AddressType(ins.Index);
                    Pop(at);
                    Push(at);
                    break;
                }
            case 0xD0: // ref.null
                Push(ins.Type);
                break;
            case 0xD1: // ref.is_null
                {
                    var t = Pop();
                    if (t != Unknown && !t.IsRef()) Fail("type mismatch");
                    Push(ValueType.I32);
                    break;
                }
            case 0xD2: // ref.func
                if (ins.Index >= (uint)module.FunctionCount) Fail("unknown function " + ins.Index);
                if (!ctx.DeclaredFunctionRefs.Contains((int)ins.Index)) Fail("undeclared function reference");
                Push(ValueType.FuncRef);
                break;
            case Opcodes.MiscBase + 8: // memory.init
                {
                    var at = AddressType(ins.Index2);
                    CheckDataIndex(ins.Index);
                    Pop(ValueType.I32);
                    Pop(ValueType.I32);
                    Pop(at);
                    break;
                }
            case Opcodes.MiscBase + 9: // data.drop
                CheckDataIndex(ins.Index);
                break;
            case Opcodes.MiscBase + 10: // memory.copy
                {
                    var at = AddressType(ins.Index);
                    AddressType(ins.Index2);
                    Pop(at);
                    Pop(at);
                    Pop(at);
                    break;
                }
            case Opcodes.MiscBase + 11: // memory.fill
                {
                    var at = AddressType(ins.Index);
                    Pop(at);
                    Pop(ValueType.I32);
                    Pop(at);
                    break;
                }
            case Opcodes.MiscBase + 12: // table.init
                {
                    var seg = ElementAt(ins.Index);
                    var t = Table(ins.Index2);
                    if (seg.ElementType != t.ElementType) Fail("type mismatch");
                    Pop(ValueType.I32);
                    Pop(ValueType.I32);
                    Pop(ValueType.I32);
                    break;
                }
            case Opcodes.MiscBase + 13: // elem.drop
                ElementAt(ins.Index);
                break;
            case Opcodes.MiscBase + 14: // table.copy
                {
                    var dst = Table(ins.Index);
                    var src = Table(ins.Index2);
                    if (dst.ElementType != src.ElementType) Fail("type mismatch");
                    Pop(ValueType.I32);
                    Pop(ValueType.I32);
                    Pop(ValueType.I32);
                    break;
                }
            case Opcodes.MiscBase + 15: // table.grow
                {
                    var t = Table(ins.Index);
                    Pop(ValueType.I32);
                    Pop(t.ElementType);
                    Push(ValueType.I32);
                    break;
                }
            case Opcodes.MiscBase + 16: // table.size
                Table(ins.Index);
                Push(ValueType.I32);
                break;
            case Opcodes.MiscBase + 17: // table.fill
                {
                    var t = Table(ins.Index);
                    Pop(ValueType.I32);
                    Pop(t.ElementType);
                    Pop(ValueType.I32);
                    break;
                }
            default:
                Fail($"unsupported instruction {info.Name}");
                break;
        }
    }
}
