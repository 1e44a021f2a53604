using System.Reflection;
using System.Reflection.Emit;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Compilation;

internal sealed partial class FunctionCompiler
{
    private static readonly Dictionary<int, MethodInfo> SimdMethods = BindSimdMethods();

    private static Dictionary<int, MethodInfo> BindSimdMethods()
    {
        var map = new Dictionary<int, MethodInfo>();
        for (var code = Opcodes.SimdBase; code < Opcodes.TableSize; code++)
        {
            var info = Opcodes.Get(code);
            if (info is null) continue;
            var m = typeof(SimdOps).GetMethod(info.Name.Replace('.', '_'), BindingFlags.Public | BindingFlags.Static);
            if (m is not null) map[code] = m;
        }
        return map;
    }

    private void Emit(OpInfo info, ref Instruction ins, ref InstructionReader reader)
    {
        var op = ins.Opcode;
        switch (op)
        {
            case 0x00:
                EmitCallTo(Members.TrapUnreachable);
                il.Emit(OpCodes.Throw);
                MarkUnreachable();
                return;
            case 0x01:
                return;
            case 0x02:
            case 0x03:
            case 0x04:
                EmitBlock(ins, op);
                return;
            case 0x05:
                EmitElse();
                return;
            case 0x0B:
                EmitEnd();
                return;
            case 0x0C:
                EmitBranch(ins.Index);
                return;
            case 0x0D:
                EmitBranchIf(ins.Index);
                return;
            case 0x0E:
                EmitBranchTable(reader.BrTableTargets);
                return;
            case 0x0F:
                EmitReturn();
                MarkUnreachable();
                return;
            case 0x10:
                EmitCall((int)ins.Index, ins.Offset);
                return;
            case 0x11:
                EmitCallIndirect(ins.Index, ins.Index2, ins.Offset);
                return;
            case 0x1A:
                if (onIL > 0)
                {
                    il.Emit(OpCodes.Pop);
                    Pop(1);
                }
                else
                {
                    sp--;
                }
                return;
            case 0x1B:
            case 0x1C:
                {
                    Prepare(3);
                    var t = stack[sp - 2];
                    EmitCallTo(Members.Select(t));
                    Pop(3);
                    Push(t);
                    return;
                }
            case 0x20:
                LoadLocal((int)ins.Index);
                Push(localTypes[ins.Index]);
                return;
            case 0x21:
                Prepare(1);
                StoreLocal((int)ins.Index);
                Pop(1);
                return;
            case 0x22:
                Prepare(1);
                il.Emit(OpCodes.Dup);
                StoreLocal((int)ins.Index);
                return;
            case 0x23:
                EmitGlobalGet((int)ins.Index);
                return;
            case 0x24:
                EmitGlobalSet((int)ins.Index);
                return;
            case 0x25:
                Prepare(1);
                il.Emit(OpCodes.Ldc_I4, (int)ins.Index);
                EmitCtx();
                EmitCallTo(Members.TableGet);
                Pop(1);
                Push(module.Tables[(int)ins.Index].ElementType);
                return;
            case 0x26:
                EmitHelper(2, Members.TableSet, (int)ins.Index);
                return;
            case 0x3F:
                il.Emit(OpCodes.Ldloc, mem!);
                EmitField(OpCodes.Ldfld, Members.MemViewSize);
                il.Emit(OpCodes.Ldc_I4, 16);
                il.Emit(OpCodes.Shr_Un);
                if (!layout.Memory64) il.Emit(OpCodes.Conv_I4);
                Push(layout.Memory64 ? ValueType.I64 : ValueType.I32);
                return;
            case 0x40:
                {
                    Prepare(1);
                    EmitCtx();
                    EmitCallTo(layout.Memory64 ? Members.Grow64 : Members.Grow32);
                    var t = Top;
                    Pop(1);
                    Push(t);
                    EmitRefreshMemory();
                    return;
                }
            case 0x41:
                il.Emit(OpCodes.Ldc_I4, ins.I32);
                Push(ValueType.I32);
                return;
            case 0x42:
                il.Emit(OpCodes.Ldc_I8, ins.I64);
                Push(ValueType.I64);
                return;
            case 0x43:
                {
                    var f = BitConverter.Int32BitsToSingle(ins.I32);
                    if (float.IsNaN(f))
                    {
                        il.Emit(OpCodes.Ldc_I4, ins.I32);
                        EmitCallTo(Members.Method(typeof(StrictFloatOps), nameof(StrictFloatOps.F32FromBits)));
                    }
                    else
                    {
                        il.Emit(OpCodes.Ldc_R4, f);
                    }
                    Push(ValueType.F32, f is 0f or 1f or -1f ? Origin.FoldableFloatConst : Origin.None);
                    return;
                }
            case 0x44:
                {
                    var d = BitConverter.Int64BitsToDouble(ins.I64);
                    if (double.IsNaN(d))
                    {
                        il.Emit(OpCodes.Ldc_I8, ins.I64);
                        EmitCallTo(Members.Method(typeof(StrictFloatOps), nameof(StrictFloatOps.F64FromBits)));
                    }
                    else
                    {
                        il.Emit(OpCodes.Ldc_R8, d);
                    }
                    Push(ValueType.F64, d is 0d or 1d or -1d ? Origin.FoldableFloatConst : Origin.None);
                    return;
                }
            case 0xD0:
                il.Emit(OpCodes.Ldnull);
                Push(ins.Type);
                return;
            case 0xD1:
                Prepare(1);
                il.Emit(OpCodes.Ldnull);
                il.Emit(OpCodes.Ceq);
                Pop(1);
                Push(ValueType.I32);
                return;
            case 0xD2:
                il.Emit(OpCodes.Ldc_I4, (int)ins.Index);
                EmitCtx();
                EmitCallTo(Members.RefFunc);
                Push(ValueType.FuncRef);
                return;
        }

        if (info.Immediate is Immediate.MemArg or Immediate.MemArgLane)
        {
            EmitMemoryAccess(info, ins);
            return;
        }
        if (op >= Opcodes.SimdBase)
        {
            EmitSimd(info, ins);
            return;
        }
        if (op >= Opcodes.MiscBase)
        {
            EmitMisc(info, ins);
            return;
        }
        EmitNumeric(info);
    }

    /// <summary>Calls a helper whose parameters are the top <paramref name="operands"/> values, then the immediates, then the instance.</summary>
    private void EmitHelper(int operands, MethodInfo helper, params int[] immediates)
    {
        Prepare(operands);
        foreach (var imm in immediates) il.Emit(OpCodes.Ldc_I4, imm);
        EmitCtx();
        EmitCallTo(helper);
        Pop(operands);
    }

    private void EmitGlobalGet(int index)
    {
        var t = module.GlobalTypes[index].Type;
        EmitCtx();
        EmitField(OpCodes.Ldfld, layout.GlobalFields[index]);
        if (layout.GlobalIsCell[index]) EmitField(OpCodes.Ldfld, Members.CellField(t));
        Push(t);
    }

    private void EmitGlobalSet(int index)
    {
        var t = module.GlobalTypes[index].Type;
        Prepare(1);
        var tmp = Scratch(t);
        il.Emit(OpCodes.Stloc, tmp);
        EmitCtx();
        if (layout.GlobalIsCell[index])
        {
            EmitField(OpCodes.Ldfld, layout.GlobalFields[index]);
            il.Emit(OpCodes.Ldloc, tmp);
            EmitField(OpCodes.Stfld, Members.CellField(t));
        }
        else
        {
            il.Emit(OpCodes.Ldloc, tmp);
            EmitField(OpCodes.Stfld, layout.GlobalFields[index]);
        }
        Pop(1);
    }

    // ================================================================================================
    // Memory
    // ================================================================================================

    private bool Presence => layout.Options.PresenceChecks;
    private bool Dirty => layout.Options.DirtyTracking;

    /// <summary>With the address on top of the IL stack, leaves the checked native pointer to <paramref name="size"/> bytes there.</summary>
    private void EmitAddress(ulong offset, int size, bool isStore)
    {
        il.Emit(OpCodes.Ldloc, mem!);
        il.Emit(OpCodes.Ldc_I8, unchecked((long)offset));
        il.Emit(OpCodes.Ldc_I8, (long)size);
        var m64 = layout.Memory64;
        if (Presence)
        {
            EmitCtx();
            EmitCallTo(Members.MemAddr(m64, "AddrPresent"));
        }
        else
        {
            EmitCallTo(Members.MemAddr(m64, isStore && Dirty ? "AddrDirty" : "Addr"));
        }
    }

    /// <summary>The CLR type a load or store moves, and whether the value must be widened (loads) or narrowed (stores) to i64/from i64.</summary>
    private static (Type Type, OpCode? Widen) LoadShape(int op) => op switch
    {
        0x28 => (typeof(int), null),
        0x29 => (typeof(long), null),
        0x2A => (typeof(float), null),
        0x2B => (typeof(double), null),
        0x2C => (typeof(sbyte), null),
        0x2D => (typeof(byte), null),
        0x2E => (typeof(short), null),
        0x2F => (typeof(ushort), null),
        0x30 => (typeof(sbyte), OpCodes.Conv_I8),
        0x31 => (typeof(byte), OpCodes.Conv_U8),
        0x32 => (typeof(short), OpCodes.Conv_I8),
        0x33 => (typeof(ushort), OpCodes.Conv_U8),
        0x34 => (typeof(int), OpCodes.Conv_I8),
        0x35 => (typeof(uint), OpCodes.Conv_U8),
        _ => throw new InvalidOperationException($"not a load: 0x{op:x}"),
    };

    private static (Type Type, bool Narrow) StoreShape(int op) => op switch
    {
        0x36 => (typeof(int), false),
        0x37 => (typeof(long), false),
        0x38 => (typeof(float), false),
        0x39 => (typeof(double), false),
        0x3A => (typeof(byte), false),
        0x3B => (typeof(ushort), false),
        0x3C => (typeof(byte), true),
        0x3D => (typeof(ushort), true),
        0x3E => (typeof(int), true),
        _ => throw new InvalidOperationException($"not a store: 0x{op:x}"),
    };

    private void EmitMemoryAccess(OpInfo info, in Instruction ins)
    {
        var op = ins.Opcode;
        var isStore = info.Pushes!.Length == 0;
        if (op >= Opcodes.SimdBase)
        {
            EmitSimdMemoryAccess(info, ins, isStore);
            return;
        }
        var m64 = layout.Memory64;
        if (layout.Options.FullyInterruptible)
        {
            EmitInlineMemoryAccess(info, op, ins.MemOffset, isStore);
            return;
        }
        if (!isStore)
        {
            Prepare(1);
            var (type, widen) = LoadShape(op);
            il.Emit(OpCodes.Ldloc, mem!);
            il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.MemOffset));
            if (Presence) EmitCtx();
            EmitCallTo(Members.MemAccess(m64, Presence ? "LoadPresent" : "Load", type));
            if (widen is { } w) il.Emit(w);
            Pop(1);
            Push(info.Pushes[0]);
            return;
        }

        Prepare(2);
        var (storeType, narrow) = StoreShape(op);
        if (narrow) il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldloc, mem!);
        il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.MemOffset));
        if (Presence) EmitCtx();
        EmitCallTo(Members.MemAccess(m64, Presence ? "StorePresent" : Dirty ? "StoreDirty" : "Store", storeType));
        Pop(2);
    }

    /// <summary>
    /// Loads and stores for code that must stay suspendable while a guest access waits in a kernel page fault
    /// (userfaultfd post-copy): the access itself is an <c>ldind</c>/<c>stind</c> in the fully interruptible
    /// compiled method, never inside a helper the JIT may not inline (Tier 0 inlines nothing), where a thread
    /// blocked in the fault could not be suspended for a garbage collection.
    /// </summary>
    private void EmitInlineMemoryAccess(OpInfo info, int op, ulong memOffset, bool isStore)
    {
        if (!isStore)
        {
            Prepare(1);
            var (type, widen) = LoadShape(op);
            EmitAddress(memOffset, info.AccessSize, false);
            il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(LoadIndirect(type));
            if (widen is { } w) il.Emit(w);
            Pop(1);
            Push(info.Pushes![0]);
            return;
        }
        Prepare(2);
        var (storeType, narrow) = StoreShape(op);
        if (narrow) il.Emit(OpCodes.Conv_I4);
        var value = Scratch(narrow ? ValueType.I32 : ValueTypeOf(storeType));
        il.Emit(OpCodes.Stloc, value);
        EmitAddress(memOffset, info.AccessSize, true);
        il.Emit(OpCodes.Ldloc, value);
        il.Emit(OpCodes.Unaligned, (byte)1);
        il.Emit(StoreIndirect(storeType));
        Pop(2);
    }

    private static OpCode LoadIndirect(Type t) =>
        t == typeof(int) ? OpCodes.Ldind_I4 : t == typeof(long) ? OpCodes.Ldind_I8 : t == typeof(float) ? OpCodes.Ldind_R4
        : t == typeof(double) ? OpCodes.Ldind_R8 : t == typeof(sbyte) ? OpCodes.Ldind_I1 : t == typeof(byte) ? OpCodes.Ldind_U1
        : t == typeof(short) ? OpCodes.Ldind_I2 : t == typeof(ushort) ? OpCodes.Ldind_U2 : t == typeof(uint) ? OpCodes.Ldind_U4
        : throw new InvalidOperationException($"no indirect load for {t}");

    private static OpCode StoreIndirect(Type t) =>
        t == typeof(int) ? OpCodes.Stind_I4 : t == typeof(long) ? OpCodes.Stind_I8 : t == typeof(float) ? OpCodes.Stind_R4
        : t == typeof(double) ? OpCodes.Stind_R8 : t == typeof(byte) ? OpCodes.Stind_I1 : t == typeof(ushort) ? OpCodes.Stind_I2
        : throw new InvalidOperationException($"no indirect store for {t}");

    private static ValueType ValueTypeOf(Type t) =>
        t == typeof(long) ? ValueType.I64 : t == typeof(float) ? ValueType.F32 : t == typeof(double) ? ValueType.F64 : ValueType.I32;

    /// <summary>
    /// Fully interruptible code: touches the first and last byte of a SIMD access inline, so that a page fault
    /// happens here rather than in the helper that then does the access (see <see cref="EmitInlineMemoryAccess"/>).
    /// Expects the pointer on the stack and leaves it there.
    /// </summary>
    private void EmitTouch(int size)
    {
        if (!layout.Options.FullyInterruptible) return;
        il.Emit(OpCodes.Dup);
        il.Emit(OpCodes.Ldind_U1);
        il.Emit(OpCodes.Pop);
        il.Emit(OpCodes.Dup);
        il.Emit(OpCodes.Ldc_I4, size - 1);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldind_U1);
        il.Emit(OpCodes.Pop);
    }

    private void EmitSimdMemoryAccess(OpInfo info, in Instruction ins, bool isStore)
    {
        var helper = SimdMethods[ins.Opcode];
        if (info.Immediate == Immediate.MemArgLane)
        {
            Prepare(2);
            var v = Scratch(ValueType.V128);
            il.Emit(OpCodes.Stloc, v);
            EmitAddress(ins.MemOffset, info.AccessSize, isStore);
            EmitTouch(info.AccessSize);
            il.Emit(OpCodes.Ldloc, v);
            il.Emit(OpCodes.Ldc_I4, (int)ins.Lane);
            EmitCallTo(helper);
            Pop(2);
            if (!isStore) Push(ValueType.V128);
            return;
        }
        if (isStore)
        {
            Prepare(2);
            var v = Scratch(ValueType.V128);
            il.Emit(OpCodes.Stloc, v);
            EmitAddress(ins.MemOffset, info.AccessSize, true);
            EmitTouch(info.AccessSize);
            il.Emit(OpCodes.Ldloc, v);
            EmitCallTo(helper);
            Pop(2);
            return;
        }
        Prepare(1);
        EmitAddress(ins.MemOffset, info.AccessSize, false);
        EmitTouch(info.AccessSize);
        EmitCallTo(helper);
        Pop(1);
        Push(ValueType.V128);
    }

    // ================================================================================================
    // 0xFC prefix: saturating truncation, bulk memory, tables
    // ================================================================================================

    private void EmitMisc(OpInfo info, in Instruction ins)
    {
        var sub = ins.Opcode - Opcodes.MiscBase;
        var m64 = layout.Memory64;
        switch (sub)
        {
            case <= 7:
                EmitNumeric(info);
                return;
            case 8:
                EmitHelper(3, m64 ? Members.MemInit64 : Members.MemInit32, (int)ins.Index);
                return;
            case 9:
                EmitHelper(0, Members.DataDrop, (int)ins.Index);
                return;
            case 10:
                EmitHelper(3, m64 ? Members.MemCopy64 : Members.MemCopy32);
                return;
            case 11:
                EmitHelper(3, m64 ? Members.MemFill64 : Members.MemFill32);
                return;
            case 12:
                EmitHelper(3, Members.TableInit, (int)ins.Index, (int)ins.Index2);
                return;
            case 13:
                EmitHelper(0, Members.ElemDrop, (int)ins.Index);
                return;
            case 14:
                EmitHelper(3, Members.TableCopy, (int)ins.Index, (int)ins.Index2);
                return;
            case 15:
                EmitHelper(2, Members.TableGrow, (int)ins.Index);
                Push(ValueType.I32);
                return;
            case 16:
                EmitHelper(0, Members.TableSize, (int)ins.Index);
                Push(ValueType.I32);
                return;
            case 17:
                EmitHelper(3, Members.TableFill, (int)ins.Index);
                return;
        }
        throw new InvalidOperationException($"no code generator for {info.Name}");
    }

    // ================================================================================================
    // SIMD
    // ================================================================================================

    private void EmitSimd(OpInfo info, in Instruction ins)
    {
        if (ins.Opcode == Opcodes.SimdBase + 0x0C)
        {
            il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.Bits));
            il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.BitsHigh));
            EmitCallTo(Members.V128Const);
            Push(ValueType.V128);
            return;
        }
        var helper = SimdMethods.TryGetValue(ins.Opcode, out var m) ? m : throw new InvalidOperationException($"no code generator for {info.Name}");
        var pops = info.Pops!.Length;
        Prepare(pops);
        switch (info.Immediate)
        {
            case Immediate.Lane:
                il.Emit(OpCodes.Ldc_I4, (int)ins.Lane);
                break;
            case Immediate.Shuffle:
                il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.Bits));
                il.Emit(OpCodes.Ldc_I8, unchecked((long)ins.BitsHigh));
                break;
        }
        EmitCallTo(helper);
        Pop(pops);
        Push(info.Pushes![0]);
    }

    // ================================================================================================
    // Numeric instructions
    // ================================================================================================

    private void EmitNumeric(OpInfo info)
    {
        var pops = info.Pops!.Length;
        Prepare(pops);
        if (!EmitStrictFloat(info.Code)) EmitNumericBody(info.Code);
        Pop(pops);
        Push(info.Pushes![0], info.Code == 0xBB ? Origin.Promote : Origin.None);
    }

    /// <summary>Float arithmetic on operands the JIT would fold unsoundly goes through non-inlined helpers.</summary>
    private bool EmitStrictFloat(int op)
    {
        string? name = null;
        if (op is >= 0x92 and <= 0x95 or >= 0xA0 and <= 0xA3)
        {
            if (origins[sp - 1] != Origin.FoldableFloatConst && origins[sp - 2] != Origin.FoldableFloatConst) return false;
            name = op switch
            {
                0x92 => nameof(StrictFloatOps.F32Add),
                0x93 => nameof(StrictFloatOps.F32Sub),
                0x94 => nameof(StrictFloatOps.F32Mul),
                0x95 => nameof(StrictFloatOps.F32Div),
                0xA0 => nameof(StrictFloatOps.F64Add),
                0xA1 => nameof(StrictFloatOps.F64Sub),
                0xA2 => nameof(StrictFloatOps.F64Mul),
                _ => nameof(StrictFloatOps.F64Div),
            };
        }
        else if (op == 0xB6 && origins[sp - 1] == Origin.Promote)
        {
            name = nameof(StrictFloatOps.F32Demote);
        }
        if (name is null) return false;
        EmitCallTo(Members.Method(typeof(StrictFloatOps), name));
        return true;
    }

    private void Helper(string name) => EmitCallTo(Members.Method(typeof(ScalarOps), name));

    private void Not()
    {
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ceq);
    }

    private void MaskShift(int bits)
    {
        if (bits == 64) il.Emit(OpCodes.Conv_I4);
        il.Emit(OpCodes.Ldc_I4, bits - 1);
        il.Emit(OpCodes.And);
    }

    private void EmitNumericBody(int op)
    {
        switch (op)
        {
            case 0x45: il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Ceq); break;
            case 0x50: il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Conv_I8); il.Emit(OpCodes.Ceq); break;
            case 0x46 or 0x51 or 0x5B or 0x61: il.Emit(OpCodes.Ceq); break;
            case 0x47 or 0x52 or 0x5C or 0x62: il.Emit(OpCodes.Ceq); Not(); break;
            case 0x48 or 0x53 or 0x5D or 0x63: il.Emit(OpCodes.Clt); break;
            case 0x49 or 0x54: il.Emit(OpCodes.Clt_Un); break;
            case 0x4A or 0x55 or 0x5E or 0x64: il.Emit(OpCodes.Cgt); break;
            case 0x4B or 0x56: il.Emit(OpCodes.Cgt_Un); break;
            case 0x4C or 0x57: il.Emit(OpCodes.Cgt); Not(); break;
            case 0x4D or 0x58: il.Emit(OpCodes.Cgt_Un); Not(); break;
            case 0x4E or 0x59: il.Emit(OpCodes.Clt); Not(); break;
            case 0x4F or 0x5A: il.Emit(OpCodes.Clt_Un); Not(); break;
            // Floating-point le/ge must be false for NaN: "not (a > b or unordered)".
            case 0x5F or 0x65: il.Emit(OpCodes.Cgt_Un); Not(); break;
            case 0x60 or 0x66: il.Emit(OpCodes.Clt_Un); Not(); break;

            case 0x67: Helper(nameof(ScalarOps.I32Clz)); break;
            case 0x68: Helper(nameof(ScalarOps.I32Ctz)); break;
            case 0x69: Helper(nameof(ScalarOps.I32Popcnt)); break;
            case 0x6A or 0x7C or 0x92 or 0xA0: il.Emit(OpCodes.Add); break;
            case 0x6B or 0x7D or 0x93 or 0xA1: il.Emit(OpCodes.Sub); break;
            case 0x6C or 0x7E or 0x94 or 0xA2: il.Emit(OpCodes.Mul); break;
            case 0x95 or 0xA3: il.Emit(OpCodes.Div); break;
            case 0x6D: Helper(nameof(ScalarOps.I32DivS)); break;
            case 0x6E: Helper(nameof(ScalarOps.I32DivU)); break;
            case 0x6F: Helper(nameof(ScalarOps.I32RemS)); break;
            case 0x70: Helper(nameof(ScalarOps.I32RemU)); break;
            case 0x71 or 0x83: il.Emit(OpCodes.And); break;
            case 0x72 or 0x84: il.Emit(OpCodes.Or); break;
            case 0x73 or 0x85: il.Emit(OpCodes.Xor); break;
            case 0x74: MaskShift(32); il.Emit(OpCodes.Shl); break;
            case 0x75: MaskShift(32); il.Emit(OpCodes.Shr); break;
            case 0x76: MaskShift(32); il.Emit(OpCodes.Shr_Un); break;
            case 0x77: Helper(nameof(ScalarOps.I32Rotl)); break;
            case 0x78: Helper(nameof(ScalarOps.I32Rotr)); break;
            case 0x79: Helper(nameof(ScalarOps.I64Clz)); break;
            case 0x7A: Helper(nameof(ScalarOps.I64Ctz)); break;
            case 0x7B: Helper(nameof(ScalarOps.I64Popcnt)); break;
            case 0x7F: Helper(nameof(ScalarOps.I64DivS)); break;
            case 0x80: Helper(nameof(ScalarOps.I64DivU)); break;
            case 0x81: Helper(nameof(ScalarOps.I64RemS)); break;
            case 0x82: Helper(nameof(ScalarOps.I64RemU)); break;
            case 0x86: MaskShift(64); il.Emit(OpCodes.Shl); break;
            case 0x87: MaskShift(64); il.Emit(OpCodes.Shr); break;
            case 0x88: MaskShift(64); il.Emit(OpCodes.Shr_Un); break;
            case 0x89: Helper(nameof(ScalarOps.I64Rotl)); break;
            case 0x8A: Helper(nameof(ScalarOps.I64Rotr)); break;

            case 0x8B: Helper(nameof(ScalarOps.F32Abs)); break;
            case 0x8C or 0x9A: il.Emit(OpCodes.Neg); break;
            case 0x8D: Helper(nameof(ScalarOps.F32Ceil)); break;
            case 0x8E: Helper(nameof(ScalarOps.F32Floor)); break;
            case 0x8F: Helper(nameof(ScalarOps.F32Trunc)); break;
            case 0x90: Helper(nameof(ScalarOps.F32Nearest)); break;
            case 0x91: Helper(nameof(ScalarOps.F32Sqrt)); break;
            case 0x96: Helper(nameof(ScalarOps.F32Min)); break;
            case 0x97: Helper(nameof(ScalarOps.F32Max)); break;
            case 0x98: Helper(nameof(ScalarOps.F32Copysign)); break;
            case 0x99: Helper(nameof(ScalarOps.F64Abs)); break;
            case 0x9B: Helper(nameof(ScalarOps.F64Ceil)); break;
            case 0x9C: Helper(nameof(ScalarOps.F64Floor)); break;
            case 0x9D: Helper(nameof(ScalarOps.F64Trunc)); break;
            case 0x9E: Helper(nameof(ScalarOps.F64Nearest)); break;
            case 0x9F: Helper(nameof(ScalarOps.F64Sqrt)); break;
            case 0xA4: Helper(nameof(ScalarOps.F64Min)); break;
            case 0xA5: Helper(nameof(ScalarOps.F64Max)); break;
            case 0xA6: Helper(nameof(ScalarOps.F64Copysign)); break;

            case 0xA7: il.Emit(OpCodes.Conv_I4); break;
            case 0xA8: Helper(nameof(ScalarOps.I32TruncF32S)); break;
            case 0xA9: Helper(nameof(ScalarOps.I32TruncF32U)); break;
            case 0xAA: Helper(nameof(ScalarOps.I32TruncF64S)); break;
            case 0xAB: Helper(nameof(ScalarOps.I32TruncF64U)); break;
            case 0xAC: il.Emit(OpCodes.Conv_I8); break;
            case 0xAD: il.Emit(OpCodes.Conv_U8); break;
            case 0xAE: Helper(nameof(ScalarOps.I64TruncF32S)); break;
            case 0xAF: Helper(nameof(ScalarOps.I64TruncF32U)); break;
            case 0xB0: Helper(nameof(ScalarOps.I64TruncF64S)); break;
            case 0xB1: Helper(nameof(ScalarOps.I64TruncF64U)); break;
            case 0xB2: il.Emit(OpCodes.Conv_R4); break;
            case 0xB3: Helper(nameof(ScalarOps.F32ConvertI32U)); break;
            case 0xB4: Helper(nameof(ScalarOps.F32ConvertI64S)); break;
            case 0xB5: Helper(nameof(ScalarOps.F32ConvertI64U)); break;
            case 0xB6: il.Emit(OpCodes.Conv_R4); break;
            case 0xB7: il.Emit(OpCodes.Conv_R8); break;
            case 0xB8: Helper(nameof(ScalarOps.F64ConvertI32U)); break;
            case 0xB9: Helper(nameof(ScalarOps.F64ConvertI64S)); break;
            case 0xBA: Helper(nameof(ScalarOps.F64ConvertI64U)); break;
            case 0xBB: il.Emit(OpCodes.Conv_R8); break;
            case 0xBC: Helper(nameof(ScalarOps.I32ReinterpretF32)); break;
            case 0xBD: Helper(nameof(ScalarOps.I64ReinterpretF64)); break;
            case 0xBE: Helper(nameof(ScalarOps.F32ReinterpretI32)); break;
            case 0xBF: Helper(nameof(ScalarOps.F64ReinterpretI64)); break;
            case 0xC0: il.Emit(OpCodes.Conv_I1); break;
            case 0xC1: il.Emit(OpCodes.Conv_I2); break;
            case 0xC2: il.Emit(OpCodes.Conv_I1); il.Emit(OpCodes.Conv_I8); break;
            case 0xC3: il.Emit(OpCodes.Conv_I2); il.Emit(OpCodes.Conv_I8); break;
            case 0xC4: il.Emit(OpCodes.Conv_I4); il.Emit(OpCodes.Conv_I8); break;

            case Opcodes.MiscBase + 0: Helper(nameof(ScalarOps.I32TruncSatF32S)); break;
            case Opcodes.MiscBase + 1: Helper(nameof(ScalarOps.I32TruncSatF32U)); break;
            case Opcodes.MiscBase + 2: Helper(nameof(ScalarOps.I32TruncSatF64S)); break;
            case Opcodes.MiscBase + 3: Helper(nameof(ScalarOps.I32TruncSatF64U)); break;
            case Opcodes.MiscBase + 4: Helper(nameof(ScalarOps.I64TruncSatF32S)); break;
            case Opcodes.MiscBase + 5: Helper(nameof(ScalarOps.I64TruncSatF32U)); break;
            case Opcodes.MiscBase + 6: Helper(nameof(ScalarOps.I64TruncSatF64S)); break;
            case Opcodes.MiscBase + 7: Helper(nameof(ScalarOps.I64TruncSatF64U)); break;
            default:
                throw new InvalidOperationException($"no code generator for opcode 0x{op:x}");
        }
    }
}
