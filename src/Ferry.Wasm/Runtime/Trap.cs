using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Runtime;

/// <summary>The kinds of trap the WebAssembly spec defines; the message of each is the spec's text.</summary>
public enum TrapKind
{
    Unreachable,
    OutOfBoundsMemory,
    OutOfBoundsTable,
    UndefinedElement,
    UninitializedElement,
    IndirectCallTypeMismatch,
    IntegerDivideByZero,
    IntegerOverflow,
    InvalidConversionToInteger,
    CallStackExhausted,
    NullReference,
    OutOfBoundsDataSegment,
    HostError,
}

/// <summary>A WebAssembly trap: execution of the instance stopped at a well-defined point.</summary>
public sealed class TrapException : WasmException
{
    public TrapException(TrapKind kind) : base(MessageOf(kind)) => Kind = kind;
    public TrapException(TrapKind kind, string message) : base(message) => Kind = kind;

    public TrapKind Kind { get; }

    /// <summary>Wasm-level backtrace (outermost last), filled in at the boundary where the trap leaves the engine.</summary>
    public IReadOnlyList<string> WasmBacktrace { get; internal set; } = [];

    public static string MessageOf(TrapKind kind) => kind switch
    {
        TrapKind.Unreachable => "unreachable",
        TrapKind.OutOfBoundsMemory => "out of bounds memory access",
        TrapKind.OutOfBoundsTable => "out of bounds table access",
        TrapKind.UndefinedElement => "undefined element",
        TrapKind.UninitializedElement => "uninitialized element",
        TrapKind.IndirectCallTypeMismatch => "indirect call type mismatch",
        TrapKind.IntegerDivideByZero => "integer divide by zero",
        TrapKind.IntegerOverflow => "integer overflow",
        TrapKind.InvalidConversionToInteger => "invalid conversion to integer",
        TrapKind.CallStackExhausted => "call stack exhausted",
        TrapKind.NullReference => "null reference",
        TrapKind.OutOfBoundsDataSegment => "out of bounds memory access",
        _ => "host error",
    };
}

/// <summary>
/// Exception factories for checks inlined into compiled code: the check itself ends in a <c>throw</c>, which RyuJIT
/// treats as a rarely-run block (values stay in registers on the hot path), while the allocation lives here.
/// </summary>
public static class TrapFactory
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static TrapException OutOfBoundsMemory() => new(TrapKind.OutOfBoundsMemory);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static TrapException Create(TrapKind kind) => new(kind);
}

/// <summary>
/// Throw helpers called from compiled code. Each is a separate non-inlined method so the fast paths that call
/// them stay small enough to inline.
/// </summary>
public static class Trap
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void Throw(TrapKind kind) => throw new TrapException(kind);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void Unreachable() => throw new TrapException(TrapKind.Unreachable);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void OutOfBoundsMemory() => throw new TrapException(TrapKind.OutOfBoundsMemory);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void OutOfBoundsTable() => throw new TrapException(TrapKind.OutOfBoundsTable);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void UndefinedElement() => throw new TrapException(TrapKind.UndefinedElement);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void UninitializedElement() => throw new TrapException(TrapKind.UninitializedElement);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void IndirectCallTypeMismatch() => throw new TrapException(TrapKind.IndirectCallTypeMismatch);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void DivideByZero() => throw new TrapException(TrapKind.IntegerDivideByZero);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void IntegerOverflow() => throw new TrapException(TrapKind.IntegerOverflow);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void InvalidConversion() => throw new TrapException(TrapKind.InvalidConversionToInteger);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void CallStackExhausted() => throw new TrapException(TrapKind.CallStackExhausted);
}
