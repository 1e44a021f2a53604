using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// The portable state of one suspended WebAssembly call frame: which function, where in it (a safe-point id
/// assigned by the compiler), and every local and operand-stack value, typed. No native pointers or host
/// addresses: valid on any machine that runs the same module.
/// </summary>
public sealed class FrameRecord
{
    public FrameRecord(int functionIndex, int safePoint, LocalValue[] locals, WasmValue[] stack)
    {
        FunctionIndex = functionIndex;
        SafePoint = safePoint;
        Locals = locals;
        Stack = stack;
    }

    public int FunctionIndex { get; }
    public int SafePoint { get; }
    /// <summary>
    /// The locals live at the safe point (parameters and declared locals share one index space). Dead locals are
    /// not recorded; they come back as zero, which no code will read.
    /// </summary>
    public LocalValue[] Locals { get; }
    /// <summary>Operand stack, bottom first.</summary>
    public WasmValue[] Stack { get; }
}

/// <summary>One live local of a frozen frame.</summary>
public readonly record struct LocalValue(int Index, WasmValue Value);

/// <summary>Thrown when frames being restored do not match the code (a corrupt or foreign snapshot).</summary>
public sealed class FrameMismatchException(string message) : WasmException(message);

/// <summary>
/// Collects frames while the stack unwinds (innermost first) and hands them back while it is rebuilt
/// (outermost first). Compiled code calls the Save*/Load* methods on cold paths only.
/// </summary>
public sealed class FrameStack
{
    private readonly List<FrameRecord> frames = [];
    private readonly List<LocalValue> locals = [];
    private readonly List<WasmValue> pending = [];
    private readonly List<WasmValue> stack = [];
    private FrameRecord? current;
    private int localCursor, stackCursor;
    private int rewindIndex = -1;

    /// <summary>Frames captured by the last unwind, innermost first.</summary>
    public IReadOnlyList<FrameRecord> Captured => frames;

    public bool IsRewinding => rewindIndex >= 0;

    public void Clear()
    {
        frames.Clear();
        pending.Clear();
        locals.Clear();
        stack.Clear();
        rewindIndex = -1;
        current = null;
    }

    // ---- unwinding (called by compiled code) ----
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackI32(int v) => stack.Add(WasmValue.FromI32(v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackI64(long v) => stack.Add(WasmValue.FromI64(v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackF32(float v) => stack.Add(WasmValue.FromF32(v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackF64(double v) => stack.Add(WasmValue.FromF64(v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackV128(Vector128<byte> v) => stack.Add(WasmValue.FromV128(v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackFuncRef(object? v) => stack.Add(WasmValue.FromRef(ValueType.FuncRef, v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveStackExternRef(object? v) => stack.Add(WasmValue.FromRef(ValueType.ExternRef, v));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalI32(int v, int index) => locals.Add(new LocalValue(index, WasmValue.FromI32(v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalI64(long v, int index) => locals.Add(new LocalValue(index, WasmValue.FromI64(v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalF32(float v, int index) => locals.Add(new LocalValue(index, WasmValue.FromF32(v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalF64(double v, int index) => locals.Add(new LocalValue(index, WasmValue.FromF64(v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalV128(Vector128<byte> v, int index) => locals.Add(new LocalValue(index, WasmValue.FromV128(v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalFuncRef(object? v, int index) => locals.Add(new LocalValue(index, WasmValue.FromRef(ValueType.FuncRef, v)));
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void SaveLocalExternRef(object? v, int index) => locals.Add(new LocalValue(index, WasmValue.FromRef(ValueType.ExternRef, v)));

    // ---- unwinding through a shared save method: values first, layout from the safe-point table ----
    public void PushValueI32(int v) => pending.Add(WasmValue.FromI32(v));
    public void PushValueI64(long v) => pending.Add(WasmValue.FromI64(v));
    public void PushValueF32(float v) => pending.Add(WasmValue.FromF32(v));
    public void PushValueF64(double v) => pending.Add(WasmValue.FromF64(v));
    public void PushValueV128(Vector128<byte> v) => pending.Add(WasmValue.FromV128(v));
    public void PushValueFuncRef(object? v) => pending.Add(WasmValue.FromRef(ValueType.FuncRef, v));
    public void PushValueExternRef(object? v) => pending.Add(WasmValue.FromRef(ValueType.ExternRef, v));

    /// <summary>Turns the pushed values into a frame: the first <c>layout.Stack.Length</c> are the operand stack, the rest the live locals.</summary>
    public void CompletePending(int functionIndex, int safePoint, Compilation.SafePointLayout layout)
    {
        var stackCount = layout.Stack.Length;
        if (pending.Count != stackCount + layout.LiveLocals.Length)
        {
            var got = pending.Count;
            pending.Clear();
            throw new FrameMismatchException($"function {functionIndex} safe point {safePoint}: {got} values for a layout of {stackCount + layout.LiveLocals.Length}");
        }
        var stackValues = new WasmValue[stackCount];
        for (var i = 0; i < stackCount; i++) stackValues[i] = pending[i];
        var localValues = new LocalValue[layout.LiveLocals.Length];
        for (var i = 0; i < localValues.Length; i++) localValues[i] = new LocalValue(layout.LiveLocals[i], pending[stackCount + i]);
        pending.Clear();
        frames.Add(new FrameRecord(functionIndex, safePoint, localValues, stackValues));
    }

    /// <summary>Completes the frame whose values were just saved.</summary>
    public void EndFrame(int functionIndex, int safePoint)
    {
        frames.Add(new FrameRecord(functionIndex, safePoint, [.. locals], [.. stack]));
        locals.Clear();
        stack.Clear();
    }

    // ---- rewinding ----

    /// <summary>Prepares to rebuild <paramref name="innermostFirst"/>.</summary>
    public void StartRewind(IReadOnlyList<FrameRecord> innermostFirst)
    {
        frames.Clear();
        frames.AddRange(innermostFirst);
        rewindIndex = frames.Count - 1;
    }

    /// <summary>The function the next frame to rebuild belongs to.</summary>
    public int NextRewindFunction => rewindIndex >= 0 ? frames[rewindIndex].FunctionIndex : -1;

    /// <summary>The safe point of the next frame to rebuild.</summary>
    public int NextRewindSafePoint => rewindIndex >= 0 ? frames[rewindIndex].SafePoint : -1;

    /// <summary>Called by a function's frame rebuilder: takes its frame and returns the safe-point id.</summary>
    public int BeginRewind(int functionIndex)
    {
        if (rewindIndex < 0) throw new FrameMismatchException($"function {functionIndex} entered for resume but no frame is left");
        current = frames[rewindIndex--];
        if (current.FunctionIndex != functionIndex)
        {
            throw new FrameMismatchException($"frame belongs to function {current.FunctionIndex}, resumed in function {functionIndex}");
        }
        localCursor = 0;
        stackCursor = 0;
        if (rewindIndex < 0) frames.Clear();
        return current.SafePoint;
    }

    /// <summary>
    /// The value of local <paramref name="index"/> if the frame recorded it, else zero (the local was dead there).
    /// The rebuilder asks for every local in increasing order, so this walks the record once.
    /// </summary>
    private WasmValue RestoreLocal(ValueType t, int index)
    {
        var f = current ?? throw new FrameMismatchException("no frame being restored");
        if (localCursor >= f.Locals.Length || f.Locals[localCursor].Index != index) return WasmValue.Default(t);
        var v = f.Locals[localCursor++].Value;
        if (v.Type != t) throw new FrameMismatchException($"frame of function {f.FunctionIndex}: local {index} is {v.Type.Name()}, code expects {t.Name()}");
        return v;
    }

    private WasmValue NextStack(ValueType t)
    {
        var f = current ?? throw new FrameMismatchException("no frame being restored");
        if (stackCursor >= f.Stack.Length) throw new FrameMismatchException($"frame of function {f.FunctionIndex} has too few stack values");
        var v = f.Stack[stackCursor++];
        if (v.Type != t) throw new FrameMismatchException($"frame of function {f.FunctionIndex}: stack value {stackCursor - 1} is {v.Type.Name()}, code expects {t.Name()}");
        return v;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public int RestoreLocalI32(int index) => RestoreLocal(ValueType.I32, index).I32;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public long RestoreLocalI64(int index) => RestoreLocal(ValueType.I64, index).I64;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public float RestoreLocalF32(int index) => RestoreLocal(ValueType.F32, index).F32;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public double RestoreLocalF64(int index) => RestoreLocal(ValueType.F64, index).F64;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public Vector128<byte> RestoreLocalV128(int index) => RestoreLocal(ValueType.V128, index).V128;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public FuncRef? RestoreLocalFuncRef(int index) => (FuncRef?)RestoreLocal(ValueType.FuncRef, index).Ref;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public object? RestoreLocalExternRef(int index) => RestoreLocal(ValueType.ExternRef, index).Ref;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int LoadStackI32() => NextStack(ValueType.I32).I32;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public long LoadStackI64() => NextStack(ValueType.I64).I64;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public float LoadStackF32() => NextStack(ValueType.F32).F32;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public double LoadStackF64() => NextStack(ValueType.F64).F64;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public Vector128<byte> LoadStackV128() => NextStack(ValueType.V128).V128;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public FuncRef? LoadStackFuncRef() => (FuncRef?)NextStack(ValueType.FuncRef).Ref;
    [MethodImpl(MethodImplOptions.NoInlining)]
    public object? LoadStackExternRef() => NextStack(ValueType.ExternRef).Ref;

    /// <summary>
    /// <see cref="EndRewindFrame"/> for a frame stopped at a function entry or loop header: it was running, not
    /// calling, so it must be the innermost — frames left below it would silently never be rebuilt.
    /// </summary>
    public void EndRewindInnermostFrame()
    {
        EndRewindFrame();
        if (rewindIndex >= 0)
        {
            var left = rewindIndex + 1;
            frames.Clear();
            rewindIndex = -1;
            throw new FrameMismatchException($"{left} frames below a frame that was not in a call");
        }
    }

    /// <summary>Checked after a frame's values are loaded: all of them must have been consumed.</summary>
    public void EndRewindFrame()
    {
        var f = current ?? throw new FrameMismatchException("no frame being restored");
        if (localCursor != f.Locals.Length || stackCursor != f.Stack.Length)
        {
            throw new FrameMismatchException($"frame of function {f.FunctionIndex} at safe point {f.SafePoint} does not match the code's layout");
        }
        current = null;
        if (rewindIndex < 0) rewindIndex = -1;
    }
}
