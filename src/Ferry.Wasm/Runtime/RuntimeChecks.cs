using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Runtime;

/// <summary>Small runtime helpers for compiled code: call-depth checks, indirect-call resolution, select.</summary>
public static class RuntimeChecks
{
    /// <summary>Deterministic limit on WebAssembly call depth; exceeding it traps with "call stack exhausted".</summary>
    public const int MaxCallDepth = 60_000;

    /// <summary>
    /// Called at every function entry with the call depth. Only one call in 32 takes the slow path, which
    /// enforces <see cref="MaxCallDepth"/> and also checks the real machine stack, so deep recursion traps
    /// cleanly instead of overflowing the thread's stack (which .NET cannot recover from).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Enter(int depth)
    {
        if ((depth & 31) == 31) EnterSlow(depth);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void EnterSlow(int depth)
    {
        if (depth > MaxCallDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack()) Trap.CallStackExhausted();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FuncRef CallIndirectTarget(object?[] elements, int index, int typeId)
    {
        if ((uint)index >= (uint)elements.Length) throw TrapFactory.Create(TrapKind.UndefinedElement);
        var f = elements[index];
        if (f is null) throw TrapFactory.Create(TrapKind.UninitializedElement);
        var fr = Unsafe.As<FuncRef>(f);
        if (fr.TypeId != typeId) throw TrapFactory.Create(TrapKind.IndirectCallTypeMismatch);
        return fr;
    }

    public static Exception Unreachable() => new TrapException(TrapKind.Unreachable);

    public static Exception BadSafePoint(int functionIndex, int safePoint) =>
        new FrameMismatchException($"function {functionIndex} has no safe point {safePoint}");

    /// <summary>
    /// Entry point of the resume version of the function whose frame is rebuilt next, for a call site of type
    /// <paramref name="typeId"/>: the code is called through that signature, so a frame of a function of another type
    /// (a damaged or reordered snapshot) is refused here rather than called wrongly.
    /// </summary>
    public static nint NextResumeEntry(InstanceBase ctx, int typeId)
    {
        var f = ctx.Frames.NextRewindFunction;
        var compiled = ctx.Owner.Compiled;
        // -1 when no frame is left (a damaged snapshot whose innermost frame was stopped in a call).
        if (f < compiled.Module.ImportedFunctionCount || f >= compiled.Module.FunctionCount) throw new FrameMismatchException($"frame names function {f}, which this module does not define");
        if (FuncTypeIds.Of(compiled.Module.FunctionType(f)) != typeId) throw new FrameMismatchException($"frame of function {f} does not fit the call it is resumed under");
        return compiled.ResumeEntry(f, ctx.Frames.NextRewindSafePoint);
    }

    /// <summary>Called by the shared save methods: completes the frame from the safe-point table and starts unwinding.</summary>
    public static void CompleteSave(InstanceBase ctx, int function, int safePoint)
    {
        ctx.Frames.CompletePending(function, safePoint, ctx.Owner.Compiled.SafePoints.Get(function, safePoint));
        ctx.Interrupt = InstanceBase.Unwinding;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int SelectI32(int a, int b, int c) => c != 0 ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long SelectI64(long a, long b, int c) => c != 0 ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float SelectF32(float a, float b, int c) => c != 0 ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double SelectF64(double a, double b, int c) => c != 0 ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<byte> SelectV128(Vector128<byte> a, Vector128<byte> b, int c) => c != 0 ? a : b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static object? SelectRef(object? a, object? b, int c) => c != 0 ? a : b;

    [DoesNotReturn]
    public static void Fail(string message) => throw new InvalidOperationException(message);
}
