using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// The portable state of one suspended WebAssembly call frame: which function, where in it (a safe-point id
/// assigned by the compiler), and every local and operand-stack value, typed. No native pointers or host
/// addresses: valid on any machine that runs the same module.
/// </summary>
public sealed class FrameRecord
{
    public FrameRecord(int functionIndex, int safePoint, WasmValue[] locals, WasmValue[] stack)
    {
        FunctionIndex = functionIndex;
        SafePoint = safePoint;
        Locals = locals;
        Stack = stack;
    }

    public int FunctionIndex { get; }
    public int SafePoint { get; }
    /// <summary>Parameters then declared locals.</summary>
    public WasmValue[] Locals { get; }
    /// <summary>Operand stack, bottom first.</summary>
    public WasmValue[] Stack { get; }
}

/// <summary>Thrown when frames being restored do not match the code (a corrupt or foreign snapshot).</summary>
public sealed class FrameMismatchException(string message) : WasmException(message);

/// <summary>
/// Collects frames while the stack unwinds (innermost first) and hands them back while it is rebuilt
/// (outermost first). Compiled code calls the Save*/Load* methods on cold paths only.
/// </summary>
public sealed class FrameStack
{
    private readonly List<FrameRecord> frames = [];
    private readonly List<WasmValue> locals = [];
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
        locals.Clear();
        stack.Clear();
        rewindIndex = -1;
        current = null;
    }

    // ---- unwinding (called by compiled code) ----
    public void SaveStackI32(int v) => stack.Add(WasmValue.FromI32(v));
    public void SaveStackI64(long v) => stack.Add(WasmValue.FromI64(v));
    public void SaveStackF32(float v) => stack.Add(WasmValue.FromF32(v));
    public void SaveStackF64(double v) => stack.Add(WasmValue.FromF64(v));
    public void SaveStackV128(Vector128<byte> v) => stack.Add(WasmValue.FromV128(v));
    public void SaveStackFuncRef(object? v) => stack.Add(WasmValue.FromRef(ValueType.FuncRef, v));
    public void SaveStackExternRef(object? v) => stack.Add(WasmValue.FromRef(ValueType.ExternRef, v));
    public void SaveLocalI32(int v) => locals.Add(WasmValue.FromI32(v));
    public void SaveLocalI64(long v) => locals.Add(WasmValue.FromI64(v));
    public void SaveLocalF32(float v) => locals.Add(WasmValue.FromF32(v));
    public void SaveLocalF64(double v) => locals.Add(WasmValue.FromF64(v));
    public void SaveLocalV128(Vector128<byte> v) => locals.Add(WasmValue.FromV128(v));
    public void SaveLocalFuncRef(object? v) => locals.Add(WasmValue.FromRef(ValueType.FuncRef, v));
    public void SaveLocalExternRef(object? v) => locals.Add(WasmValue.FromRef(ValueType.ExternRef, v));

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

    /// <summary>Called on entry of a resume-compiled function: takes its frame and returns the safe-point id.</summary>
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

    private WasmValue NextLocal(ValueType t)
    {
        var f = current ?? throw new FrameMismatchException("no frame being restored");
        if (localCursor >= f.Locals.Length) throw new FrameMismatchException($"frame of function {f.FunctionIndex} has too few locals");
        var v = f.Locals[localCursor++];
        if (v.Type != t) throw new FrameMismatchException($"frame of function {f.FunctionIndex}: local {localCursor - 1} is {v.Type.Name()}, code expects {t.Name()}");
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

    public int LoadLocalI32() => NextLocal(ValueType.I32).I32;
    public long LoadLocalI64() => NextLocal(ValueType.I64).I64;
    public float LoadLocalF32() => NextLocal(ValueType.F32).F32;
    public double LoadLocalF64() => NextLocal(ValueType.F64).F64;
    public Vector128<byte> LoadLocalV128() => NextLocal(ValueType.V128).V128;
    public FuncRef? LoadLocalFuncRef() => (FuncRef?)NextLocal(ValueType.FuncRef).Ref;
    public object? LoadLocalExternRef() => NextLocal(ValueType.ExternRef).Ref;
    public int LoadStackI32() => NextStack(ValueType.I32).I32;
    public long LoadStackI64() => NextStack(ValueType.I64).I64;
    public float LoadStackF32() => NextStack(ValueType.F32).F32;
    public double LoadStackF64() => NextStack(ValueType.F64).F64;
    public Vector128<byte> LoadStackV128() => NextStack(ValueType.V128).V128;
    public FuncRef? LoadStackFuncRef() => (FuncRef?)NextStack(ValueType.FuncRef).Ref;
    public object? LoadStackExternRef() => NextStack(ValueType.ExternRef).Ref;

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
