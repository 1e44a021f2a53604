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
/// ("in call": the callee's own frames are below it). A function's resume version (<see cref="resume"/>) is the
/// same code plus a dispatcher that restores a frame stopped at any of its safe points and jumps there; jumps into
/// loops go through the loop headers so every loop keeps a single entry and stays optimisable. It is a separate
/// method, so the ordinary code carries none of this.
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
        public int[] LiveLocals = [];
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
    private readonly MemberTokens tokens;
    private readonly Module module;
    private readonly int functionIndex;
    private readonly FuncType type;
    private readonly ILGenerator il;
    /// <summary>A resume version: entered only to rebuild a frozen frame of this function, then runs it to its end.</summary>
    private readonly bool resume;
    /// <summary>The one safe point a resume version rebuilds frames for, or -1 for all of them.</summary>
    private readonly int resumeAt;
    private readonly bool safePointsEnabled;
    private readonly ValueType[] localTypes;
    private readonly LocalBuilder?[] locals;
    private readonly int paramCount;

    /// <summary>The function's <see cref="MemView"/> of linear memory (base, size, tracking maps).</summary>
    private LocalBuilder? mem;

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
    private readonly LocalLiveness? liveness;
    private LocalBuilder? resumeTarget;
    private Label rewindEntry;

    /// <param name="resumeAt">-2: the ordinary code; -1: a resume version for every safe point; n: one for safe point n only.</param>
    public FunctionCompiler(ModuleLayout layout, int functionIndex, ILGenerator il, int resumeAt = -2)
    {
        this.layout = layout;
        tokens = layout.Tokens ?? throw new InvalidOperationException("the module layout is not being emitted");
        module = layout.Module;
        this.functionIndex = functionIndex;
        type = module.FunctionType(functionIndex);
        this.il = il;
        resume = resumeAt >= -1;
        this.resumeAt = resumeAt;
        safePointsEnabled = (layout.Options.SafePoints && layout.CanUnwind[functionIndex]) || resume;
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

        if (layout.Options.FullyInterruptible)
        {
            // A loop the JIT cannot prove dead (depth is never -1) makes the method fully interruptible.
            var head = il.DefineLabel();
            il.MarkLabel(head);
            EmitDepth();
            il.Emit(OpCodes.Ldc_I4_M1);
            il.Emit(OpCodes.Beq, head);
        }
        EmitDepth();
        EmitCallTo(Members.EnterCheck);
        if (layout.HasMemory)
        {
            mem = il.DeclareLocal(typeof(MemView));
            EmitRefreshMemory();
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
            EmitCallTo(Members.MultiSet(type.Results[i]));
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
        if (index < paramCount) il.Emit(OpCodes.Ldarg, (short)index);
        else il.Emit(OpCodes.Ldloc, locals[index]!);
    }

    private void StoreLocal(int index)
    {
        if (index < paramCount) il.Emit(OpCodes.Starg, (short)index);
        else il.Emit(OpCodes.Stloc, locals[index]!);
    }

    /// <summary>The instance argument (after the WebAssembly parameters).</summary>
    private void EmitCtx() => il.Emit(OpCodes.Ldarg, (short)paramCount);

    /// <summary>The call depth argument (last).</summary>
    private void EmitDepth() => il.Emit(OpCodes.Ldarg, (short)(paramCount + 1));

    /// <summary>Pushes the instance and depth + 1: the trailing arguments of every call.</summary>
    private void EmitCallTail()
    {
        EmitCtx();
        EmitDepth();
        il.Emit(OpCodes.Ldc_I4_1);
        il.Emit(OpCodes.Add);
    }

    // ================================================================================================
    // Calls
    // ================================================================================================

    private void EmitCall(int callee, int offset)
    {
        var t = module.FunctionType(callee);
        if (callee >= module.ImportedFunctionCount)
        {
            EmitDirectCall(callee, t, offset);
            return;
        }
        EmitCallCommon(t, offset, callSequence: () =>
        {
            EmitCallThroughRef(t, () =>
            {
                EmitCtx();
                EmitField(OpCodes.Ldfld, layout.ImportFields[callee]);
            });
        }, calleeMayGrowMemory: layout.MemoryShared);
    }

    /// <summary>
    /// A call to a function of this module. Its arguments stay on the IL stack when they are already there (a
    /// frozen callee records its own parameters, so the call site needs only the values below the arguments).
    /// </summary>
    private void EmitDirectCall(int callee, FuncType t, int offset)
    {
        var n = t.Parameters.Length;
        if (onIL > n)
        {
            // Values below the arguments are on the IL stack: they must be in slots across the call.
            SpillAll();
        }
        Prepare(n);
        var results = t.Results;
        var canUnwind = safePointsEnabled && layout.CanUnwind[callee];
        var afterResult = il.DefineLabel();
        EmitCallTail();
        EmitCallTo(layout.Methods[callee]!);
        Pop(n);
        if (results.Length > 0) il.Emit(OpCodes.Stloc, CallResult(results[0]));
        il.MarkLabel(afterResult);
        if (canUnwind)
        {
            var sp0 = NewSafePoint(SafePointKind.InCall, stack.AsSpan(0, sp).ToArray(), offset);
            EmitUnwindCheck(sp0);
            if (Rewinds(sp0))
            {
                // Rewind: the callee rebuilds its own frames; its arguments come from its frame record.
                sp0.Target = il.DefineLabel();
                coldBlocks.Add(() =>
                {
                    il.MarkLabel(sp0.Target);
                    foreach (var p in t.Parameters) EmitDefault(p);
                    EmitCallTail();
                    EmitCtx();
                    il.Emit(OpCodes.Ldc_I4, FuncTypeIds.Of(t));
                    EmitCallTo(Members.ResumeEntry);
                    il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
                    if (results.Length > 0) il.Emit(OpCodes.Stloc, CallResult(results[0]));
                    il.Emit(OpCodes.Br, afterResult);
                });
            }
        }
        PushResults(results);
        if (layout.HasMemory && layout.MayGrowMemory[callee]) EmitRefreshMemory();
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
                EmitCtx();
                EmitField(OpCodes.Ldfld, Members.Tables);
                il.Emit(OpCodes.Ldc_I4, (int)tableIndex);
                il.Emit(OpCodes.Ldelem_Ref);
                EmitField(OpCodes.Ldfld, Members.TableElements);
                il.Emit(OpCodes.Ldloc, indexSlot);
                il.Emit(OpCodes.Ldc_I4, typeId);
                EmitCallTo(Members.CallIndirectTarget);
            });
        }, extraStack: [ValueType.I32]);
    }

    /// <summary>Calls a FuncRef produced by <paramref name="loadRef"/>: calli on its code with its target.</summary>
    private void EmitCallThroughRef(FuncType t, Action loadRef)
    {
        var fref = il.DeclareLocal(typeof(FuncRef));
        loadRef();
        il.Emit(OpCodes.Stloc, fref);
        LoadArgs(t);
        il.Emit(OpCodes.Ldloc, fref);
        EmitField(OpCodes.Ldfld, Members.FuncTarget);
        EmitDepth();
        il.Emit(OpCodes.Ldc_I4_1);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldloc, fref);
        EmitField(OpCodes.Ldfld, Members.FuncCode);
        il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
    }

    private void LoadArgs(FuncType t)
    {
        var from = sp - t.Parameters.Length;
        for (var i = 0; i < t.Parameters.Length; i++) il.Emit(OpCodes.Ldloc, Slot(from + i, t.Parameters[i]));
    }

    /// <summary>Reloads the memory view (at entry, and after anything that may have grown memory).</summary>
    private void EmitRefreshMemory()
    {
        EmitCtx();
        EmitCallTo(Members.MemViewOf);
        il.Emit(OpCodes.Stloc, mem!);
    }

    /// <summary>After a call: did the callee unwind? Then this frame unwinds too (from a cold block).</summary>
    private void EmitUnwindCheck(SafePoint s)
    {
        var cold = il.DefineLabel();
        EmitCtx();
        il.Emit(OpCodes.Volatile);
        EmitField(OpCodes.Ldfld, Members.Interrupt);
        il.Emit(OpCodes.Ldc_I4, InstanceBase.Unwinding);
        il.Emit(OpCodes.Beq, cold);
        coldBlocks.Add(() =>
        {
            il.MarkLabel(cold);
            EmitUnwind(s);
        });
    }

    private void PushResults(ValueType[] results)
    {
        if (results.Length == 0) return;
        il.Emit(OpCodes.Ldloc, CallResult(results[0]));
        Push(results[0]);
        for (var i = 1; i < results.Length; i++)
        {
            il.Emit(OpCodes.Ldc_I4, i);
            EmitCallTo(Members.MultiGet(results[i]));
            Push(results[i]);
        }
    }

    /// <summary>
    /// Calls through a function reference (imports, call_indirect): spill everything, call, take the results,
    /// and (with safe points) check whether the callee unwound — then this frame unwinds too, recording an "in
    /// call" safe point whose stack includes the arguments, so a host call can be re-executed (it has no frame of
    /// its own) or a WebAssembly callee re-entered on resume.
    /// </summary>
    private void EmitCallCommon(FuncType t, int offset, Action callSequence, ValueType[]? extraStack = null, bool calleeMayGrowMemory = true)
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
            var recorded = new ValueType[sp + (extraStack?.Length ?? 0)];
            Array.Copy(stack, recorded, sp);
            extraStack?.CopyTo(recorded, sp);
            var sp0 = NewSafePoint(SafePointKind.InCall, recorded, offset);
            EmitUnwindCheck(sp0);
            if (Rewinds(sp0))
            {
                // Rewind: rebuild the callee's frames, or re-execute a host call (which has none).
                sp0.Target = il.DefineLabel();
                var spAtCall = sp;
                coldBlocks.Add(() =>
                {
                    il.MarkLabel(sp0.Target);
                    EmitCtx();
                    EmitField(OpCodes.Ldfld, Members.Frames);
                    EmitCallTo(Members.IsRewinding);
                    il.Emit(OpCodes.Brfalse, callStart);
                    var saveSp = sp;
                    sp = spAtCall;
                    LoadArgs(t);
                    sp = saveSp;
                    EmitCallTail();
                    EmitCtx();
                    il.Emit(OpCodes.Ldc_I4, FuncTypeIds.Of(t));
                    EmitCallTo(Members.ResumeEntry);
                    il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
                    if (results.Length > 0) il.Emit(OpCodes.Stloc, CallResult(results[0]));
                    il.Emit(OpCodes.Br, afterResult);
                });
            }
        }

        sp -= t.Parameters.Length;
        PushResults(results);
        if (layout.HasMemory && calleeMayGrowMemory) EmitRefreshMemory();
    }

    // ================================================================================================
    // Safe points
    // ================================================================================================

    private SafePoint NewSafePoint(SafePointKind kind, ValueType[] stackTypes, int key)
    {
        var s = new SafePoint { Id = safePoints.Count, Kind = kind, Stack = stackTypes, Loop = CurrentLoop(), Key = key };
        safePoints.Add(s);
        var live = new List<int>();
        for (var i = 0; i < localTypes.Length; i++)
        {
            if (liveness!.IsLive(key, i)) live.Add(i);
        }
        s.LiveLocals = [.. live];
        layout.SafePoints.Register(functionIndex, s.Id, new SafePointLayout(stackTypes, s.LiveLocals));
        return s;
    }

    /// <summary>Entry and loop-header safe points: if a freeze was requested, unwind from here.</summary>
    /// <summary>A call to a helper or compiled function, through the module's token cache.</summary>
    private void EmitCallTo(MethodInfo method) => tokens.Call(il, method);

    private void EmitField(OpCode opcode, FieldInfo field) => tokens.Field(il, opcode, field);

    private void EmitSafePointCheck(SafePointKind kind, int key)
    {
        var recorded = stack.AsSpan(0, sp).ToArray();
        var s = NewSafePoint(kind, recorded, key);
        var cold = il.DefineLabel();
        EmitCtx();
        il.Emit(OpCodes.Volatile);
        EmitField(OpCodes.Ldfld, Members.Interrupt);
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
    /// The unwind path of one safe point: one call to the shared save method for its shape, passing the operand
    /// stack and the live locals as arguments; then return (the caller's call site notices and unwinds too).
    /// The return goes through a throw of the instance's <see cref="UnwindSignal"/>, caught right here by a handler
    /// that returns: a block that ends in a throw is one the JIT treats as never run, so the hot code's register
    /// allocation and layout are not bent around the unwind path (a plain return there counts as a loop exit taken
    /// one time in ten by the JIT's synthesized profile, which cost bfs 1.4x; docs/benchmarks.md). The whole path is
    /// the try block, so the safe point's check branches to the try's first instruction, as IL requires.
    /// </summary>
    private void EmitUnwind(SafePoint s)
    {
        var types = new List<ValueType>(s.Stack.Length + s.LiveLocals.Length);
        types.AddRange(s.Stack);
        foreach (var l in s.LiveLocals) types.Add(localTypes[l]);
        il.BeginExceptionBlock();
        EmitCtx();
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        il.Emit(OpCodes.Ldc_I4, s.Id);
        for (var i = 0; i < s.Stack.Length; i++) il.Emit(OpCodes.Ldloc, Slot(i, s.Stack[i]));
        foreach (var l in s.LiveLocals) LoadLocal(l);
        EmitCallTo(layout.Shapes!.Get(types));
        // Preallocated: a constructor call here would be an inlining candidate in every unwind block.
        EmitCtx();
        EmitField(OpCodes.Ldfld, Members.UnwindSignal);
        il.Emit(OpCodes.Throw);
        il.BeginCatchBlock(typeof(UnwindSignal));
        il.Emit(OpCodes.Pop);
        il.EndExceptionBlock();
        EmitDefaultReturn();
    }

    /// <summary>
    /// Resume versions only: take this function's frame record, restore every recorded local (one shared sequence: a
    /// local the record lacks was dead and stays zero), then per safe point its operand stack, and go there —
    /// directly when it is outside any loop, otherwise through the outermost enclosing loop's header, whose
    /// dispatcher forwards one level in (resumeTarget holds the safe point + 1 until it is reached). Each loop's
    /// dispatcher is a switch over the safe points inside it (numbered contiguously), so the code grows with safe
    /// points × loop depth, not with their product. A version for one safe point restores only its live locals and
    /// routes without switches.
    /// </summary>
    private void EmitRewindDispatch()
    {
        if (resumeAt >= safePoints.Count) throw new FrameMismatchException($"function {functionIndex} has no safe point {resumeAt}");
        var mismatch = il.DefineLabel();
        il.MarkLabel(rewindEntry);
        var id = safePointId ??= il.DeclareLocal(typeof(int));
        EmitCtx();
        EmitField(OpCodes.Ldfld, Members.Frames);
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        EmitCallTo(Members.BeginRewind);
        il.Emit(OpCodes.Stloc, id);
        var restored = resumeAt >= 0 ? safePoints[resumeAt].LiveLocals : Enumerable.Range(0, localTypes.Length);
        foreach (var l in restored)
        {
            EmitCtx();
            EmitField(OpCodes.Ldfld, Members.Frames);
            il.Emit(OpCodes.Ldc_I4, l);
            EmitCallTo(Members.RestoreLocal(localTypes[l]));
            StoreLocal(l);
        }
        var restores = new Label[safePoints.Count];
        for (var k = 0; k < restores.Length; k++) restores[k] = Rewinds(safePoints[k]) ? il.DefineLabel() : mismatch;
        il.Emit(OpCodes.Ldloc, id);
        il.Emit(OpCodes.Switch, restores);
        il.Emit(OpCodes.Br, mismatch);

        for (var k = 0; k < safePoints.Count; k++)
        {
            var s = safePoints[k];
            if (!Rewinds(s)) continue;
            il.MarkLabel(restores[k]);
            for (var i = 0; i < s.Stack.Length; i++)
            {
                EmitCtx();
                EmitField(OpCodes.Ldfld, Members.Frames);
                EmitCallTo(Members.LoadStack(s.Stack[i]));
                il.Emit(OpCodes.Stloc, Slot(i, s.Stack[i]));
            }
            EmitCtx();
            EmitField(OpCodes.Ldfld, Members.Frames);
            EmitCallTo(s.Kind == SafePointKind.InCall ? Members.EndRewindFrame : Members.EndRewindInnermostFrame);
            if (s.Loop < 0)
            {
                il.Emit(OpCodes.Br, s.Target);
            }
            else
            {
                var outer = s.Loop;
                while (loops[outer].Parent >= 0) outer = loops[outer].Parent;
                il.Emit(OpCodes.Ldc_I4, k + 1);
                il.Emit(OpCodes.Stloc, resumeTarget!);
                il.Emit(OpCodes.Br, loops[outer].Header);
            }
        }

        for (var li = 0; li < loops.Count; li++)
        {
            var loop = loops[li];
            il.MarkLabel(loop.Dispatch);
            if (loop.LastSafePoint < loop.FirstSafePoint)
            {
                il.Emit(OpCodes.Br, mismatch);
                continue;
            }
            if (resumeAt >= 0)
            {
                // One target: this loop is on its way (forward to the next header in, or arrive) or it is not.
                if (resumeAt < loop.FirstSafePoint || resumeAt > loop.LastSafePoint)
                {
                    il.Emit(OpCodes.Br, mismatch);
                }
                else
                {
                    EmitRoute(safePoints[resumeAt], li);
                }
                continue;
            }
            // Every safe point: arrive here, or forward to the header of the child loop it lies in.
            var routes = new Label[loop.LastSafePoint - loop.FirstSafePoint + 1];
            var arrivals = new List<(Label Label, SafePoint Point)>();
            for (var k = 0; k < routes.Length; k++)
            {
                var s = safePoints[loop.FirstSafePoint + k];
                if (s.Loop == li)
                {
                    routes[k] = il.DefineLabel();
                    arrivals.Add((routes[k], s));
                }
                else
                {
                    routes[k] = loops[ChildLoopTowards(s, li)].Header;
                }
            }
            il.Emit(OpCodes.Ldloc, resumeTarget!);
            il.Emit(OpCodes.Ldc_I4, loop.FirstSafePoint + 1);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Switch, routes);
            il.Emit(OpCodes.Br, mismatch);
            foreach (var (label, s) in arrivals)
            {
                il.MarkLabel(label);
                EmitArrive(s);
            }
        }

        il.MarkLabel(mismatch);
        il.Emit(OpCodes.Ldc_I4, functionIndex);
        il.Emit(OpCodes.Ldloc, safePointId!);
        EmitCallTo(Members.FrameMismatch);
        il.Emit(OpCodes.Throw);
    }

    private bool Rewinds(SafePoint s) => resume && (resumeAt < 0 || s.Id == resumeAt);

    /// <summary>From loop <paramref name="li"/>'s dispatcher towards <paramref name="s"/>, which lies inside it.</summary>
    private void EmitRoute(SafePoint s, int li)
    {
        if (s.Loop == li) EmitArrive(s);
        else il.Emit(OpCodes.Br, loops[ChildLoopTowards(s, li)].Header);
    }

    /// <summary>Arrived at the frame's safe point: no loop header forwards any more.</summary>
    private void EmitArrive(SafePoint s)
    {
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stloc, resumeTarget!);
        il.Emit(OpCodes.Br, s.Target);
    }

    /// <summary>The loop directly inside <paramref name="li"/> that contains <paramref name="s"/> (which is deeper than <paramref name="li"/>).</summary>
    private int ChildLoopTowards(SafePoint s, int li)
    {
        var child = s.Loop;
        while (loops[child].Parent != li) child = loops[child].Parent;
        return child;
    }
}
