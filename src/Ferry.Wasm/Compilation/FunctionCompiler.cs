using System.Reflection;
using System.Reflection.Emit;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Compiles one validated function body to IL.
///
/// The WebAssembly operand stack is modelled at compile time. Values computed by straight-line code stay on
/// the IL evaluation stack, so expressions become IL trees that RyuJIT optimises well. Before any control-flow
/// instruction, call or safe point the compiler "spills" them into IL locals, one per (stack depth, type):
/// at those points the whole frame state — parameters, locals and operand stack — is in named IL locals.
/// That is what makes freezing (unwinding the frame into a <see cref="FrameRecord"/>) and resuming
/// (re-entering it from one) possible without changing how ordinary code is compiled.
///
/// Safe points are numbered in code order: function entry (0), each loop header, and each call site
/// ("in call": the callee's own frames are below it). A resume compile (<see cref="resume"/>) emits the same
/// code plus a dispatcher that restores a frame and jumps to its safe point; jumps into loops go through the
/// loop headers so every loop keeps a single entry and stays optimisable.
/// </summary>
internal sealed partial class FunctionCompiler
{
    private sealed class Ctrl
    {
        public int Opcode;          // 0x02 block, 0x03 loop, 0x04 if, 0 = the function body
        public Label Label;         // branch target: the end for block/if/body, the header for loop
        public Label ElseLabel;
        public bool HasElse;
        public int Height;          // operand stack height below the block's parameters
        public ValueType[] Params = [];
        public ValueType[] Results = [];
        public bool Unreachable;
        public bool Targeted;
        public LocalBuilder[]? ParamCopies; // if-with-parameters: the parameters, for the else branch
        public int LoopIndex = -1;  // for loops: index in `loops`
        public ValueType[] LabelTypes => Opcode == 0x03 ? Params : Results;
    }

    private enum SafePointKind { Entry, LoopHeader, InCall }

    private enum Origin : byte { None, FoldableFloatConst, Promote }

    private sealed class SafePoint
    {
        public int Id;
        public int Key;           // liveness key: the instruction's file offset, or LocalLiveness.EntryKey
        public SafePointKind Kind;
        public ValueType[] Stack = [];
        public Label Target;      // where a resumed frame continues
        public int Loop = -1;     // innermost enclosing loop, or -1
    }

    private sealed class LoopInfo
    {
        public Label Header;
        public Label Dispatch;
        public int Parent;
        public int FirstSafePoint;
        public int LastSafePoint;
    }

    private readonly ModuleLayout layout;
    private readonly Module module;
    private readonly int functionIndex;
    private readonly FuncType type;
    private readonly ILGenerator il;
    private readonly bool resume;
    private readonly bool safePointsEnabled;
    private readonly ValueType[] localTypes;
    private readonly LocalBuilder?[] locals;
    private readonly int paramCount;

    private LocalBuilder? memBase;
    private LocalBuilder? memSize;
    private LocalBuilder? dirtyMap;
    private LocalBuilder? presentMap;

    private ValueType[] stack = new ValueType[32];
    /// <summary>Where each stack value came from, when that matters to avoid unsound JIT folds of floats.</summary>
    private Origin[] origins = new Origin[32];
    private int sp;
    private int onIL;
    private readonly List<LocalBuilder>?[] slots = new List<LocalBuilder>?[ClrTypes.Count];
    private readonly LocalBuilder?[] scratch = new LocalBuilder?[ClrTypes.Count];
    private readonly LocalBuilder?[] callResults = new LocalBuilder?[ClrTypes.Count];

    private Ctrl[] ctrls = new Ctrl[16];
    private int ctrlCount;
    private int deadDepth;

    private readonly List<SafePoint> safePoints = [];
    private readonly List<LoopInfo> loops = [];
    private readonly List<Action> coldBlocks = [];
    private LocalBuilder? safePointId;
    private Label unwindTail;
    private bool unwindTailUsed;
    private readonly LocalLiveness? liveness;
    private LocalBuilder? resumeTarget;
    private Label rewindEntry;

    public FunctionCompiler(ModuleLayout layout, int functionIndex, ILGenerator il, bool resume)
    {
        this.layout = layout;
        module = layout.Module;
        this.functionIndex = functionIndex;
        type = module.FunctionType(functionIndex);
        this.il = il;
        this.resume = resume;
        safePointsEnabled = layout.Options.SafePoints || resume;
        var body = module.Bodies[functionIndex - module.ImportedFunctionCount];
        paramCount = type.Parameters.Length;
        localTypes = new ValueType[paramCount + body.LocalCount];
        type.Parameters.CopyTo(localTypes, 0);
        var li = paramCount;
        foreach (var g in body.Locals)
        {
            for (var k = 0; k < g.Count; k++) localTypes[li++] = g.Type;
        }
        locals = new LocalBuilder?[localTypes.Length];
        for (var i = paramCount; i < localTypes.Length; i++) locals[i] = il.DeclareLocal(ClrTypes.Of(localTypes[i]));
        if (safePointsEnabled) liveness = LocalLiveness.Analyze(module, functionIndex, localTypes.Length, layout.Memory64);
    }

    public void Compile()
    {
        var body = module.Bodies[functionIndex - module.ImportedFunctionCount];

        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, Members.EnterCheck);
        if (layout.HasMemory)
        {
            memBase = il.DeclareLocal(typeof(byte*));
            memSize = il.DeclareLocal(typeof(ulong));
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Memory0);
            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Ldfld, Members.MemoryBase);
            il.Emit(OpCodes.Stloc, memBase);
            il.Emit(OpCodes.Ldfld, Members.MemorySize);
            il.Emit(OpCodes.Stloc, memSize);
            if (layout.Options.DirtyTracking)
            {
                dirtyMap = il.DeclareLocal(typeof(byte*));
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, Members.DirtyPages);
                il.Emit(OpCodes.Stloc, dirtyMap);
            }
            if (layout.Options.PresenceChecks)
            {
                presentMap = il.DeclareLocal(typeof(byte*));
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, Members.PresentPages);
                il.Emit(OpCodes.Stloc, presentMap);
            }
        }
        if (resume)
        {
            resumeTarget = il.DeclareLocal(typeof(int));
            rewindEntry = il.DefineLabel();
            il.Emit(OpCodes.Br, rewindEntry);
        }

        PushCtrl(0, [], type.Results, 0);
        if (safePointsEnabled) EmitSafePointCheck(SafePointKind.Entry, LocalLiveness.EntryKey);

        var reader = new InstructionReader(body.Code.Span, body.CodeOffset, layout.Memory64, "code");
        var ins = default(Instruction);
        while (ctrlCount > 0)
        {
            var info = reader.Read(ref ins);
            if (ctrls[ctrlCount - 1].Unreachable)
            {
                SkipDead(ref ins);
                continue;
            }
            Emit(info, ref ins, ref reader);
        }

        foreach (var block in coldBlocks) block();
        if (unwindTailUsed) EmitUnwindTail();
        if (resume) EmitRewindDispatch();
    }

    // ================================================================================================
    // Operand stack model
    // ================================================================================================

    private void Push(ValueType t, Origin origin = Origin.None)
    {
        if (sp == stack.Length)
        {
            Array.Resize(ref stack, stack.Length * 2);
            Array.Resize(ref origins, stack.Length);
        }
        origins[sp] = origin;
        stack[sp++] = t;
        onIL++;
    }

    /// <summary>Records that the top <paramref name="n"/> values (all on the IL stack) were consumed.</summary>
    private void Pop(int n)
    {
        sp -= n;
        onIL -= n;
    }

    private ValueType Top => stack[sp - 1];

    private LocalBuilder Slot(int depth, ValueType t)
    {
        var list = slots[ClrTypes.Index(t)] ??= [];
        while (list.Count <= depth) list.Add(il.DeclareLocal(ClrTypes.Of(t)));
        return list[depth];
    }

    private LocalBuilder Scratch(ValueType t) => scratch[ClrTypes.Index(t)] ??= il.DeclareLocal(ClrTypes.Of(t));

    private LocalBuilder CallResult(ValueType t) => callResults[ClrTypes.Index(t)] ??= il.DeclareLocal(ClrTypes.Of(t));

    /// <summary>Moves every value still on the IL evaluation stack into its slot local.</summary>
    private void SpillAll()
    {
        for (var i = sp - 1; i >= sp - onIL; i--) il.Emit(OpCodes.Stloc, Slot(i, stack[i]));
        onIL = 0;
    }

    /// <summary>Spills everything except the top value, which stays on the IL stack.</summary>
    private void SpillAllButTop()
    {
        Prepare(1);
        if (onIL == 1) return;
        var t = Top;
        var tmp = Scratch(t);
        il.Emit(OpCodes.Stloc, tmp);
        onIL--;
        sp--;
        SpillAll();
        sp++;
        il.Emit(OpCodes.Ldloc, tmp);
        onIL = 1;
    }

    /// <summary>Ensures the top <paramref name="k"/> values are on the IL stack, in order.</summary>
    private void Prepare(int k)
    {
        if (onIL >= k) return;
        SpillAll();
        for (var i = sp - k; i < sp; i++) il.Emit(OpCodes.Ldloc, Slot(i, stack[i]));
        onIL = k;
    }

    /// <summary>Sets the stack to <paramref name="height"/> entries, all in slots (after control flow merges).</summary>
    private void ResetStack(int height, ValueType[] top)
    {
        sp = height;
        onIL = 0;
        foreach (var t in top)
        {
            if (sp == stack.Length)
            {
                Array.Resize(ref stack, stack.Length * 2);
                Array.Resize(ref origins, stack.Length);
            }
            origins[sp] = Origin.None;
            stack[sp++] = t;
        }
    }

    // ================================================================================================
    // Control frames
    // ================================================================================================

    private Ctrl PushCtrl(int opcode, ValueType[] ps, ValueType[] rs, int height)
    {
        if (ctrlCount == ctrls.Length) Array.Resize(ref ctrls, ctrls.Length * 2);
        var c = ctrls[ctrlCount] ??= new Ctrl();
        c.Opcode = opcode;
        c.Label = il.DefineLabel();
        c.HasElse = false;
        c.Height = height;
        c.Params = ps;
        c.Results = rs;
        c.Unreachable = false;
        c.Targeted = false;
        c.ParamCopies = null;
        c.LoopIndex = -1;
        ctrlCount++;
        return c;
    }

    private int CurrentLoop()
    {
        for (var i = ctrlCount - 1; i >= 0; i--)
        {
            if (ctrls[i].Opcode == 0x03) return ctrls[i].LoopIndex;
        }
        return -1;
    }

    private void BlockSignature(long blockType, out ValueType[] ps, out ValueType[] rs)
    {
        if (blockType == Instruction.EmptyBlock)
        {
            ps = [];
            rs = [];
        }
        else if (blockType < 0)
        {
            ps = [];
            rs = [(ValueType)(byte)(blockType + 0x80)];
        }
        else
        {
            var t = module.Types[(int)blockType];
            ps = t.Parameters;
            rs = t.Results;
        }
    }

    private void MarkUnreachable()
    {
        var c = ctrls[ctrlCount - 1];
        c.Unreachable = true;
        sp = c.Height;
        onIL = 0;
        deadDepth = 0;
    }

    /// <summary>In unreachable code only the block structure matters; nothing is emitted.</summary>
    private void SkipDead(ref Instruction ins)
    {
        switch (ins.Opcode)
        {
            case 0x02:
            case 0x03:
            case 0x04:
                deadDepth++;
                break;
            case 0x05:
                if (deadDepth == 0) EmitElse();
                break;
            case 0x0B:
                if (deadDepth > 0) deadDepth--;
                else EmitEnd();
                break;
        }
    }

    private void EmitBlock(in Instruction ins, int opcode)
    {
        BlockSignature(ins.BlockType, out var ps, out var rs);
        if (opcode == 0x04)
        {
            SpillAllButTop();
            Pop(1);
        }
        else
        {
            SpillAll();
        }
        var c = PushCtrl(opcode, ps, rs, sp - ps.Length);
        switch (opcode)
        {
            case 0x03:
                {
                    var parent = CurrentLoopBelowTop();
                    c.LoopIndex = loops.Count;
                    loops.Add(new LoopInfo { Header = c.Label, Dispatch = il.DefineLabel(), Parent = parent, FirstSafePoint = safePoints.Count, LastSafePoint = -1 });
                    il.MarkLabel(c.Label);
                    if (resume)
                    {
                        il.Emit(OpCodes.Ldloc, resumeTarget!);
                        il.Emit(OpCodes.Brtrue, loops[c.LoopIndex].Dispatch);
                    }
                    if (safePointsEnabled) EmitSafePointCheck(SafePointKind.LoopHeader, ins.Offset);
                    break;
                }
            case 0x04:
                c.ElseLabel = il.DefineLabel();
                if (ps.Length > 0)
                {
                    // The then-branch may overwrite the parameter slots; keep copies for the else-branch.
                    c.ParamCopies = new LocalBuilder[ps.Length];
                    for (var i = 0; i < ps.Length; i++)
                    {
                        c.ParamCopies[i] = il.DeclareLocal(ClrTypes.Of(ps[i]));
                        il.Emit(OpCodes.Ldloc, Slot(c.Height + i, ps[i]));
                        il.Emit(OpCodes.Stloc, c.ParamCopies[i]);
                    }
                }
                il.Emit(OpCodes.Brfalse, c.ElseLabel);
                break;
        }
    }

    private int CurrentLoopBelowTop()
    {
        for (var i = ctrlCount - 2; i >= 0; i--)
        {
            if (ctrls[i].Opcode == 0x03) return ctrls[i].LoopIndex;
        }
        return -1;
    }

    private void EmitElse()
    {
        var c = ctrls[ctrlCount - 1];
        if (!c.Unreachable)
        {
            SpillAll();
            il.Emit(OpCodes.Br, c.Label);
            c.Targeted = true;
        }
        il.MarkLabel(c.ElseLabel);
        c.HasElse = true;
        c.Unreachable = false;
        deadDepth = 0;
        ResetStack(c.Height, c.Params);
        if (c.ParamCopies is { } copies)
        {
            for (var i = 0; i < copies.Length; i++)
            {
                il.Emit(OpCodes.Ldloc, copies[i]);
                il.Emit(OpCodes.Stloc, Slot(c.Height + i, c.Params[i]));
            }
        }
    }

    private void EmitEnd()
    {
        var c = ctrls[ctrlCount - 1];
        if (c.Opcode == 0)
        {
            if (!c.Unreachable) EmitReturn();
            if (c.Targeted)
            {
                il.MarkLabel(c.Label);
                ResetStack(0, type.Results);
                EmitReturn();
            }
            ctrlCount--;
            return;
        }
        if (!c.Unreachable) SpillAll();
        if (c.Opcode == 0x04 && !c.HasElse)
        {
            // An if without else: the false branch passes the parameters through as results.
            if (!c.Unreachable && c.ParamCopies is not null) il.Emit(OpCodes.Br, c.Label);
            il.MarkLabel(c.ElseLabel);
            if (c.ParamCopies is { } copies)
            {
                for (var i = 0; i < copies.Length; i++)
                {
                    il.Emit(OpCodes.Ldloc, copies[i]);
                    il.Emit(OpCodes.Stloc, Slot(c.Height + i, c.Params[i]));
                }
            }
        }
        if (c.Opcode == 0x03)
        {
            loops[c.LoopIndex].LastSafePoint = safePoints.Count - 1;
        }
        else
        {
            il.MarkLabel(c.Label);
        }
        ctrlCount--;
        ResetStack(c.Height, c.Results);
    }

    /// <summary>Copies the branch values from the top of the stack into the target label's slots.</summary>
    private void MoveBranchValues(Ctrl target)
    {
        var types = target.LabelTypes;
        var from = sp - types.Length;
        if (from == target.Height) return;
        for (var i = 0; i < types.Length; i++)
        {
            il.Emit(OpCodes.Ldloc, Slot(from + i, types[i]));
            il.Emit(OpCodes.Stloc, Slot(target.Height + i, types[i]));
        }
    }

    private bool NeedsMove(Ctrl target) => target.LabelTypes.Length > 0 && sp - target.LabelTypes.Length != target.Height;

    private Ctrl LabelAt(uint depth) => ctrls[ctrlCount - 1 - (int)depth];

    private void EmitBranch(uint depth)
    {
        var target = LabelAt(depth);
        if (target.Opcode == 0)
        {
            EmitReturn();
            MarkUnreachable();
            return;
        }
        SpillAll();
        MoveBranchValues(target);
        target.Targeted = true;
        il.Emit(OpCodes.Br, target.Label);
        MarkUnreachable();
    }

    private void EmitBranchIf(uint depth)
    {
        var target = LabelAt(depth);
        SpillAllButTop();
        Pop(1);
        if (target.Opcode == 0)
        {
            var skip = il.DefineLabel();
            il.Emit(OpCodes.Brfalse, skip);
            EmitReturnFromSlots();
            il.MarkLabel(skip);
            return;
        }
        target.Targeted = true;
        if (NeedsMove(target))
        {
            var skip = il.DefineLabel();
            il.Emit(OpCodes.Brfalse, skip);
            MoveBranchValues(target);
            il.Emit(OpCodes.Br, target.Label);
            il.MarkLabel(skip);
        }
        else
        {
            il.Emit(OpCodes.Brtrue, target.Label);
        }
    }

    private void EmitBranchTable(ReadOnlySpan<uint> targets)
    {
        SpillAllButTop();
        Pop(1);
        var labels = new Label[targets.Length - 1];
        var trampolines = new List<(Label, Ctrl)>();
        Label LabelFor(uint depth)
        {
            var t = LabelAt(depth);
            if (t.Opcode != 0 && !NeedsMove(t))
            {
                t.Targeted = true;
                return t.Label;
            }
            var l = il.DefineLabel();
            trampolines.Add((l, t));
            return l;
        }
        for (var i = 0; i < labels.Length; i++) labels[i] = LabelFor(targets[i]);
        var defaultLabel = LabelFor(targets[^1]);
        il.Emit(OpCodes.Switch, labels);
        il.Emit(OpCodes.Br, defaultLabel);
        foreach (var (label, target) in trampolines)
        {
            il.MarkLabel(label);
            if (target.Opcode == 0)
            {
                EmitReturnFromSlots();
            }
            else
            {
                MoveBranchValues(target);
                target.Targeted = true;
                il.Emit(OpCodes.Br, target.Label);
            }
        }
        MarkUnreachable();
    }

    /// <summary>Returns the function's results from the top of the operand stack.</summary>
    private void EmitReturn()
    {
        var n = type.Results.Length;
        if (n <= 1 && onIL >= n)
        {
            // Only the result may remain on the IL stack at ret.
            if (onIL > n)
            {
                LocalBuilder? tmp = null;
                if (n == 1)
                {
                    tmp = Scratch(Top);
                    il.Emit(OpCodes.Stloc, tmp);
                }
                for (var i = n; i < onIL; i++) il.Emit(OpCodes.Pop);
                if (tmp is not null) il.Emit(OpCodes.Ldloc, tmp);
            }
            il.Emit(OpCodes.Ret);
            return;
        }
        SpillAll();
        EmitReturnFromSlots();
    }

    private void EmitReturnFromSlots()
    {
        var n = type.Results.Length;
        var from = sp - n;
        for (var i = 1; i < n; i++)
        {
            il.Emit(OpCodes.Ldloc, Slot(from + i, type.Results[i]));
            il.Emit(OpCodes.Ldc_I4, i);
            il.Emit(OpCodes.Call, Members.MultiSet(type.Results[i]));
        }
        if (n > 0) il.Emit(OpCodes.Ldloc, Slot(from, type.Results[0]));
        il.Emit(OpCodes.Ret);
    }

    private void EmitDefaultReturn()
    {
        if (type.Results.Length > 0) EmitDefault(type.Results[0]);
        il.Emit(OpCodes.Ret);
    }

    private void EmitDefault(ValueType t)
    {
        switch (t)
        {
            case ValueType.I32: il.Emit(OpCodes.Ldc_I4_0); break;
            case ValueType.I64: il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Conv_I8); break;
            case ValueType.F32: il.Emit(OpCodes.Ldc_R4, 0f); break;
            case ValueType.F64: il.Emit(OpCodes.Ldc_R8, 0d); break;
            case ValueType.V128:
                var tmp = Scratch(ValueType.V128);
                il.Emit(OpCodes.Ldloca, tmp);
                il.Emit(OpCodes.Initobj, ClrTypes.Of(ValueType.V128));
                il.Emit(OpCodes.Ldloc, tmp);
                break;
            default: il.Emit(OpCodes.Ldnull); break;
        }
    }

    // ================================================================================================
    // Locals
    // ================================================================================================

    private void LoadLocal(int index)
    {
        if (index < paramCount) il.Emit(OpCodes.Ldarg, (short)(index + 2));
        else il.Emit(OpCodes.Ldloc, locals[index]!);
    }

    private void StoreLocal(int index)
    {
        if (index < paramCount) il.Emit(OpCodes.Starg, (short)(index + 2));
        else il.Emit(OpCodes.Stloc, locals[index]!);
    }

    // ================================================================================================
    // Calls
    // ================================================================================================

    private void EmitCall(int callee, int offset)
    {
        var t = module.FunctionType(callee);
        EmitCallCommon(t, offset, callSequence: () =>
        {
            if (callee < module.ImportedFunctionCount)
            {
                EmitCallThroughRef(t, () =>
                {
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldfld, layout.ImportFields[callee]);
                });
            }
            else
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldc_I4_1);
                il.Emit(OpCodes.Add);
                LoadArgs(t);
                il.Emit(OpCodes.Call, layout.Methods[callee]!);
            }
        });
    }

    private void EmitCallIndirect(uint typeIndex, uint tableIndex, int offset)
    {
        var t = module.Types[(int)typeIndex];
        var typeId = FuncTypeIds.Of(t);
        // The table index operand is on top of the arguments; take it off first.
        SpillAll();
        var indexSlot = Slot(sp - 1, ValueType.I32);
        sp--;
        EmitCallCommon(t, offset, callSequence: () =>
        {
            EmitCallThroughRef(t, () =>
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, Members.Tables);
                il.Emit(OpCodes.Ldc_I4, (int)tableIndex);
                il.Emit(OpCodes.Ldelem_Ref);
                il.Emit(OpCodes.Ldfld, Members.TableElements);
                il.Emit(OpCodes.Ldloc, indexSlot);
                il.Emit(OpCodes.Ldc_I4, typeId);
                il.Emit(OpCodes.Call, Members.CallIndirectTarget);
            });
        }, extraStack: [ValueType.I32]);
    }

    /// <summary>Calls a FuncRef produced by <paramref name="loadRef"/>: calli on its code with its target.</summary>
    private void EmitCallThroughRef(FuncType t, Action loadRef)
    {
        var fref = il.DeclareLocal(typeof(FuncRef));
        loadRef();
        il.Emit(OpCodes.Stloc, fref);
        il.Emit(OpCodes.Ldloc, fref);
        il.Emit(OpCodes.Ldfld, Members.FuncTarget);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4_1);
        il.Emit(OpCodes.Add);
        LoadArgs(t);
        il.Emit(OpCodes.Ldloc, fref);
        il.Emit(OpCodes.Ldfld, Members.FuncCode);
        il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
    }

    private void LoadArgs(FuncType t)
    {
        var from = sp - t.Parameters.Length;
        for (var i = 0; i < t.Parameters.Length; i++) il.Emit(OpCodes.Ldloc, Slot(from + i, t.Parameters[i]));
    }

    /// <summary>
    /// Shared shape of every call: spill, call, take the results, and (with safe points) check whether the
    /// callee unwound — then this frame unwinds too, recording an "in call" safe point whose stack includes
    /// the arguments, so a host call can be re-executed or a WebAssembly callee re-entered on resume.
    /// </summary>
    private void EmitCallCommon(FuncType t, int offset, Action callSequence, ValueType[]? extraStack = null)
    {
        SpillAll();
        var callStart = il.DefineLabel();
        var afterResult = il.DefineLabel();
        il.MarkLabel(callStart);
        callSequence();
        var results = t.Results;
        if (results.Length > 0) il.Emit(OpCodes.Stloc, CallResult(results[0]));
        il.MarkLabel(afterResult);

        if (safePointsEnabled)
        {
            // Stack as the frame records it: everything below the call plus the arguments (and table index).
            var recorded = new ValueType[sp + (extraStack?.Length ?? 0)];
            Array.Copy(stack, recorded, sp);
            extraStack?.CopyTo(recorded, sp);
            var sp0 = NewSafePoint(SafePointKind.InCall, recorded, offset);
            var cold = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Volatile);
            il.Emit(OpCodes.Ldfld, Members.Interrupt);
            il.Emit(OpCodes.Ldc_I4, InstanceBase.Unwinding);
            il.Emit(OpCodes.Beq, cold);
            coldBlocks.Add(() =>
            {
                il.MarkLabel(cold);
                EmitUnwind(sp0);
            });
            if (resume)
            {
                // Rewind: rebuild the callee's frames (or re-execute a host call, which has none).
                sp0.Target = il.DefineLabel();
                var spAtCall = sp;
                coldBlocks.Add(() =>
                {
                    il.MarkLabel(sp0.Target);
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldfld, Members.Frames);
                    il.Emit(OpCodes.Call, Members.IsRewinding);
                    il.Emit(OpCodes.Brfalse, callStart);
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldarg_1);
                    il.Emit(OpCodes.Ldc_I4_1);
                    il.Emit(OpCodes.Add);
                    var saveSp = sp;
                    sp = spAtCall;
                    LoadArgs(t);
                    sp = saveSp;
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Call, Members.ResumeEntry);
                    il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
                    if (results.Length > 0) il.Emit(OpCodes.Stloc, CallResult(results[0]));
                    il.Emit(OpCodes.Br, afterResult);
                });
            }
        }

        sp -= t.Parameters.Length;
        if (results.Length > 0)
        {
            il.Emit(OpCodes.Ldloc, CallResult(results[0]));
            Push(results[0]);
            for (var i = 1; i < results.Length; i++)
            {
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Call, Members.MultiGet(results[i]));
                Push(results[i]);
            }
        }
        if (layout.HasMemory)
        {
            // The callee may have grown memory.
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Memory0);
            il.Emit(OpCodes.Ldfld, Members.MemorySize);
            il.Emit(OpCodes.Stloc, memSize!);
        }
    }

    // ================================================================================================
    // Safe points
    // ================================================================================================

    private SafePoint NewSafePoint(SafePointKind kind, ValueType[] stackTypes, int key)
    {
        var s = new SafePoint { Id = safePoints.Count, Kind = kind, Stack = stackTypes, Loop = CurrentLoop(), Key = key };
        safePoints.Add(s);
        return s;
    }

    /// <summary>Entry and loop-header safe points: if a freeze was requested, unwind from here.</summary>
    private void EmitSafePointCheck(SafePointKind kind, int key)
    {
        var recorded = stack.AsSpan(0, sp).ToArray();
        var s = NewSafePoint(kind, recorded, key);
        var cold = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Volatile);
        il.Emit(OpCodes.Ldfld, Members.Interrupt);
        il.Emit(OpCodes.Brtrue, cold);
        s.Target = il.DefineLabel();
        il.MarkLabel(s.Target);
        coldBlocks.Add(() =>
        {
            il.MarkLabel(cold);
            EmitUnwind(s);
        });
    }

    /// <summary>
    /// The unwind path of one safe point: save its operand stack and its live locals, then join the shared tail
    /// that completes the frame record and returns.
    /// </summary>
    private void EmitUnwind(SafePoint s)
    {
        for (var i = 0; i < s.Stack.Length; i++)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Frames);
            il.Emit(OpCodes.Ldloc, Slot(i, s.Stack[i]));
            il.Emit(OpCodes.Call, Members.SaveStack(s.Stack[i]));
        }
        for (var i = 0; i < localTypes.Length; i++)
        {
            if (!liveness!.IsLive(s.Key, i)) continue;
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Frames);
            LoadLocal(i);
            il.Emit(OpCodes.Ldc_I4, i);
            il.Emit(OpCodes.Call, Members.SaveLocal(localTypes[i]));
        }
        safePointId ??= il.DeclareLocal(typeof(int));
        il.Emit(OpCodes.Ldc_I4, s.Id);
        il.Emit(OpCodes.Stloc, safePointId);
        if (!unwindTailUsed)
        {
            unwindTail = il.DefineLabel();
            unwindTailUsed = true;
        }
        il.Emit(OpCodes.Br, unwindTail);
    }

    private void EmitUnwindTail()
    {
        il.MarkLabel(unwindTail);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, Members.Frames);
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        il.Emit(OpCodes.Ldloc, safePointId!);
        il.Emit(OpCodes.Call, Members.EndFrame);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldc_I4, InstanceBase.Unwinding);
        il.Emit(OpCodes.Volatile);
        il.Emit(OpCodes.Stfld, Members.Interrupt);
        EmitDefaultReturn();
    }

    /// <summary>
    /// Resume compiles only: restore the frame, then go to its safe point — directly when it is outside any
    /// loop, otherwise through the outermost enclosing loop's header, whose dispatcher forwards to the next
    /// header in, and so on (every loop keeps a single entry, so the JIT still optimises it as a loop).
    /// </summary>
    private void EmitRewindDispatch()
    {
        il.MarkLabel(rewindEntry);
        var id = safePointId ??= il.DeclareLocal(typeof(int));
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, Members.Frames);
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        il.Emit(OpCodes.Call, Members.BeginRewind);
        il.Emit(OpCodes.Stloc, id);
        var restore = new Label[safePoints.Count];
        for (var i = 0; i < restore.Length; i++) restore[i] = il.DefineLabel();
        il.Emit(OpCodes.Ldloc, id);
        il.Emit(OpCodes.Switch, restore);
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        il.Emit(OpCodes.Ldloc, id);
        il.Emit(OpCodes.Call, Members.FrameMismatch);
        il.Emit(OpCodes.Throw);

        foreach (var s in safePoints)
        {
            il.MarkLabel(restore[s.Id]);
            for (var i = 0; i < localTypes.Length; i++)
            {
                if (!liveness!.IsLive(s.Key, i)) continue;
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, Members.Frames);
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Call, Members.LoadLocal(localTypes[i]));
                StoreLocal(i);
            }
            for (var i = 0; i < s.Stack.Length; i++)
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, Members.Frames);
                il.Emit(OpCodes.Call, Members.LoadStack(s.Stack[i]));
                il.Emit(OpCodes.Stloc, Slot(i, s.Stack[i]));
            }
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Frames);
            il.Emit(OpCodes.Call, Members.EndRewindFrame);
            if (s.Loop < 0)
            {
                il.Emit(OpCodes.Br, s.Target);
            }
            else
            {
                var outer = s.Loop;
                while (loops[outer].Parent >= 0) outer = loops[outer].Parent;
                il.Emit(OpCodes.Ldc_I4, s.Id + 1);
                il.Emit(OpCodes.Stloc, resumeTarget!);
                il.Emit(OpCodes.Br, loops[outer].Header);
            }
        }

        // Per-loop dispatchers. resumeTarget holds safe-point id + 1 (0 = not resuming).
        for (var li = 0; li < loops.Count; li++)
        {
            var loop = loops[li];
            il.MarkLabel(loop.Dispatch);
            foreach (var s in safePoints)
            {
                if (s.Loop < 0 || !IsInside(s.Loop, li)) continue;
                var next = il.DefineLabel();
                il.Emit(OpCodes.Ldloc, resumeTarget!);
                il.Emit(OpCodes.Ldc_I4, s.Id + 1);
                il.Emit(OpCodes.Bne_Un, next);
                if (s.Loop == li)
                {
                    il.Emit(OpCodes.Ldc_I4_0);
                    il.Emit(OpCodes.Stloc, resumeTarget!);
                    il.Emit(OpCodes.Br, s.Target);
                }
                else
                {
                    var child = s.Loop;
                    while (loops[child].Parent != li) child = loops[child].Parent;
                    il.Emit(OpCodes.Br, loops[child].Header);
                }
                il.MarkLabel(next);
            }
            il.Emit(OpCodes.Ldc_I4, functionIndex);
            il.Emit(OpCodes.Ldloc, resumeTarget!);
            il.Emit(OpCodes.Call, Members.FrameMismatch);
            il.Emit(OpCodes.Throw);
        }
    }

    private bool IsInside(int loop, int ancestor)
    {
        for (var l = loop; l >= 0; l = loops[l].Parent)
        {
            if (l == ancestor) return true;
        }
        return false;
    }
}
