using System.Numerics;
using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// Scalar instructions whose WebAssembly semantics differ from a single IL opcode: trapping division,
/// checked float-to-int conversion, NaN-propagating min/max. Called from compiled code; small enough to inline.
/// </summary>
public static class ScalarOps
{
    // ---- integer division ----
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32DivS(int a, int b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        if (b == -1 && a == int.MinValue) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return a / b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32DivU(int a, int b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return (int)((uint)a / (uint)b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32RemS(int a, int b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return b == -1 ? 0 : a % b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32RemU(int a, int b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return (int)((uint)a % (uint)b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64DivS(long a, long b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        if (b == -1 && a == long.MinValue) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return a / b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64DivU(long a, long b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return (long)((ulong)a / (ulong)b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64RemS(long a, long b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return b == -1 ? 0 : a % b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64RemU(long a, long b)
    {
        if (b == 0) throw TrapFactory.Create(TrapKind.IntegerDivideByZero);
        return (long)((ulong)a % (ulong)b);
    }

    // ---- bit counting and rotation ----
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32Clz(int a) => BitOperations.LeadingZeroCount((uint)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32Ctz(int a) => a == 0 ? 32 : BitOperations.TrailingZeroCount(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32Popcnt(int a) => BitOperations.PopCount((uint)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32Rotl(int a, int n) => (int)BitOperations.RotateLeft((uint)a, n);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32Rotr(int a, int n) => (int)BitOperations.RotateRight((uint)a, n);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64Clz(long a) => BitOperations.LeadingZeroCount((ulong)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64Ctz(long a) => a == 0 ? 64 : BitOperations.TrailingZeroCount(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64Popcnt(long a) => BitOperations.PopCount((ulong)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64Rotl(long a, long n) => (long)BitOperations.RotateLeft((ulong)a, (int)n);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64Rotr(long a, long n) => (long)BitOperations.RotateRight((ulong)a, (int)n);

    // ---- float ----
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F32Min(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? a + b : MathF.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F32Max(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? a + b : MathF.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double F64Min(double a, double b) => double.IsNaN(a) || double.IsNaN(b) ? a + b : Math.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double F64Max(double a, double b) => double.IsNaN(a) || double.IsNaN(b) ? a + b : Math.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Nearest(float a) => MathF.Round(a, MidpointRounding.ToEven);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Nearest(double a) => Math.Round(a, MidpointRounding.ToEven);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Ceil(float a) => MathF.Ceiling(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Floor(float a) => MathF.Floor(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Trunc(float a) => MathF.Truncate(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Sqrt(float a) => MathF.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Abs(float a) => MathF.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32Copysign(float a, float b) => MathF.CopySign(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Ceil(double a) => Math.Ceiling(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Floor(double a) => Math.Floor(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Trunc(double a) => Math.Truncate(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Sqrt(double a) => Math.Sqrt(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Abs(double a) => Math.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64Copysign(double a, double b) => Math.CopySign(a, b);

    // ---- conversions ----
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32TruncF32S(float a)
    {
        if (float.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a >= -2147483648f && a < 2147483648f)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (int)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32TruncF32U(float a)
    {
        if (float.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a > -1f && a < 4294967296f)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (int)(uint)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32TruncF64S(double a)
    {
        if (double.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a > -2147483649.0 && a < 2147483648.0)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (int)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int I32TruncF64U(double a)
    {
        if (double.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a > -1.0 && a < 4294967296.0)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (int)(uint)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64TruncF32S(float a)
    {
        if (float.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a >= -9223372036854775808f && a < 9223372036854775808f)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (long)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64TruncF32U(float a)
    {
        if (float.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a > -1f && a < 18446744073709551616f)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (long)(ulong)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64TruncF64S(double a)
    {
        if (double.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a >= -9223372036854775808.0 && a < 9223372036854775808.0)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (long)a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long I64TruncF64U(double a)
    {
        if (double.IsNaN(a)) throw TrapFactory.Create(TrapKind.InvalidConversionToInteger);
        if (!(a > -1.0 && a < 18446744073709551616.0)) throw TrapFactory.Create(TrapKind.IntegerOverflow);
        return (long)(ulong)a;
    }

    // Saturating conversions: .NET 9+ defines float-to-integer casts as saturating with NaN -> 0 on every
    // platform, which is exactly WebAssembly's trunc_sat.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32TruncSatF32S(float a) => (int)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32TruncSatF32U(float a) => (int)(uint)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32TruncSatF64S(double a) => (int)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32TruncSatF64U(double a) => (int)(uint)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64TruncSatF32S(float a) => (long)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64TruncSatF32U(float a) => (long)(ulong)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64TruncSatF64S(double a) => (long)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64TruncSatF64U(double a) => (long)(ulong)a;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32ConvertI32U(int a) => (uint)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32ConvertI64U(long a) => (ulong)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64ConvertI32U(int a) => (uint)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64ConvertI64U(long a) => (ulong)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32ConvertI64S(long a) => a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64ConvertI64S(long a) => a;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int I32ReinterpretF32(float a) => BitConverter.SingleToInt32Bits(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long I64ReinterpretF64(double a) => BitConverter.DoubleToInt64Bits(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float F32ReinterpretI32(int a) => BitConverter.Int32BitsToSingle(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static double F64ReinterpretI64(long a) => BitConverter.Int64BitsToDouble(a);
}

/// <summary>
/// Float operations the JIT must not simplify. RyuJIT folds x*1, x/1, x-0, -1*x, x/-1, -0-x and
/// demote(promote(x)) to x or -x, which is wrong for signalling NaNs (WebAssembly requires a quiet result).
/// The compiler routes an operation here only when an operand is one of those constants straight from the
/// code — a pattern optimising compilers never emit — so the call costs real programs nothing.
/// NaN constants come through here too, because the JIT stores float constants as doubles and would quiet them.
/// </summary>
public static class StrictFloatOps
{
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32Sub(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32Mul(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32Div(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static double F64Add(double a, double b) => a + b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static double F64Sub(double a, double b) => a - b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static double F64Mul(double a, double b) => a * b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static double F64Div(double a, double b) => a / b;
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32Demote(double a) => (float)a;
    [MethodImpl(MethodImplOptions.NoInlining)] public static float F32FromBits(int bits) => BitConverter.Int32BitsToSingle(bits);
    [MethodImpl(MethodImplOptions.NoInlining)] public static double F64FromBits(long bits) => BitConverter.Int64BitsToDouble(bits);
}
