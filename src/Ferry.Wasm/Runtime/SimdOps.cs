using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using V = System.Runtime.Intrinsics.Vector128<byte>;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// The SIMD128 instructions. Method names are the instruction names with '.' replaced by '_'; the compiler
/// binds opcodes to methods by that rule. Where a Vector128 API has exactly WebAssembly's semantics it is used;
/// otherwise (saturation, NaN rules, rounding modes) the lanes are computed one by one — correctness first:
/// C toolchains used for Ferry's workloads emit SIMD only when asked to.
/// </summary>
public static unsafe class SimdOps
{
    // ---- helpers ----
    private static V B<T>(Vector128<T> v) => v.AsByte();
    private static Vector128<sbyte> S8(V v) => v.AsSByte();
    private static Vector128<short> S16(V v) => v.AsInt16();
    private static Vector128<ushort> U16(V v) => v.AsUInt16();
    private static Vector128<int> S32(V v) => v.AsInt32();
    private static Vector128<uint> U32(V v) => v.AsUInt32();
    private static Vector128<long> S64(V v) => v.AsInt64();
    private static Vector128<float> F32(V v) => v.AsSingle();
    private static Vector128<double> F64(V v) => v.AsDouble();
    private static V Not(V v) => ~v;

    public static V Const(ulong lo, ulong hi) => Vector128.Create(lo, hi).AsByte();

    // ---- memory ----
    public static V v128_load(byte* p) => Unsafe.ReadUnaligned<V>(p);
    public static void v128_store(byte* p, V v) => Unsafe.WriteUnaligned(p, v);
    public static V v128_load8x8_s(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsSByte()));
    public static V v128_load8x8_u(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsByte()));
    public static V v128_load16x4_s(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsInt16()));
    public static V v128_load16x4_u(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt16()));
    public static V v128_load32x2_s(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsInt32()));
    public static V v128_load32x2_u(byte* p) => B(Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt32()));
    public static V v128_load8_splat(byte* p) => Vector128.Create(*p);
    public static V v128_load16_splat(byte* p) => B(Vector128.Create(Unsafe.ReadUnaligned<ushort>(p)));
    public static V v128_load32_splat(byte* p) => B(Vector128.Create(Unsafe.ReadUnaligned<uint>(p)));
    public static V v128_load64_splat(byte* p) => B(Vector128.Create(Unsafe.ReadUnaligned<ulong>(p)));
    public static V v128_load32_zero(byte* p) => B(Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(p)));
    public static V v128_load64_zero(byte* p) => B(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)));
    public static V v128_load8_lane(byte* p, V v, int lane) => v.WithElement(lane, *p);
    public static V v128_load16_lane(byte* p, V v, int lane) => B(U16(v).WithElement(lane, Unsafe.ReadUnaligned<ushort>(p)));
    public static V v128_load32_lane(byte* p, V v, int lane) => B(U32(v).WithElement(lane, Unsafe.ReadUnaligned<uint>(p)));
    public static V v128_load64_lane(byte* p, V v, int lane) => B(v.AsUInt64().WithElement(lane, Unsafe.ReadUnaligned<ulong>(p)));
    public static void v128_store8_lane(byte* p, V v, int lane) => *p = v.GetElement(lane);
    public static void v128_store16_lane(byte* p, V v, int lane) => Unsafe.WriteUnaligned(p, U16(v).GetElement(lane));
    public static void v128_store32_lane(byte* p, V v, int lane) => Unsafe.WriteUnaligned(p, U32(v).GetElement(lane));
    public static void v128_store64_lane(byte* p, V v, int lane) => Unsafe.WriteUnaligned(p, v.AsUInt64().GetElement(lane));

    // ---- shuffles, splats, lanes ----
    public static V i8x16_shuffle(V a, V b, ulong lo, ulong hi)
    {
        Span<byte> r = stackalloc byte[16];
        for (var i = 0; i < 16; i++)
        {
            var idx = (int)((i < 8 ? lo >> (i * 8) : hi >> ((i - 8) * 8)) & 0xFF);
            r[i] = idx < 16 ? a.GetElement(idx) : b.GetElement(idx - 16);
        }
        return Vector128.Create((ReadOnlySpan<byte>)r);
    }

    public static V i8x16_swizzle(V a, V s)
    {
        Span<byte> r = stackalloc byte[16];
        for (var i = 0; i < 16; i++)
        {
            var idx = s.GetElement(i);
            r[i] = idx < 16 ? a.GetElement(idx) : (byte)0;
        }
        return Vector128.Create((ReadOnlySpan<byte>)r);
    }

    public static V i8x16_splat(int x) => Vector128.Create((byte)x);
    public static V i16x8_splat(int x) => B(Vector128.Create((short)x));
    public static V i32x4_splat(int x) => B(Vector128.Create(x));
    public static V i64x2_splat(long x) => B(Vector128.Create(x));
    public static V f32x4_splat(float x) => B(Vector128.Create(x));
    public static V f64x2_splat(double x) => B(Vector128.Create(x));
    public static int i8x16_extract_lane_s(V v, int lane) => S8(v).GetElement(lane);
    public static int i8x16_extract_lane_u(V v, int lane) => v.GetElement(lane);
    public static V i8x16_replace_lane(V v, int x, int lane) => v.WithElement(lane, (byte)x);
    public static int i16x8_extract_lane_s(V v, int lane) => S16(v).GetElement(lane);
    public static int i16x8_extract_lane_u(V v, int lane) => U16(v).GetElement(lane);
    public static V i16x8_replace_lane(V v, int x, int lane) => B(U16(v).WithElement(lane, (ushort)x));
    public static int i32x4_extract_lane(V v, int lane) => S32(v).GetElement(lane);
    public static V i32x4_replace_lane(V v, int x, int lane) => B(S32(v).WithElement(lane, x));
    public static long i64x2_extract_lane(V v, int lane) => S64(v).GetElement(lane);
    public static V i64x2_replace_lane(V v, long x, int lane) => B(S64(v).WithElement(lane, x));
    // Float lanes move as bits so NaN payloads survive.
    public static float f32x4_extract_lane(V v, int lane) => BitConverter.Int32BitsToSingle(S32(v).GetElement(lane));
    public static V f32x4_replace_lane(V v, float x, int lane) => B(S32(v).WithElement(lane, BitConverter.SingleToInt32Bits(x)));
    public static double f64x2_extract_lane(V v, int lane) => BitConverter.Int64BitsToDouble(S64(v).GetElement(lane));
    public static V f64x2_replace_lane(V v, double x, int lane) => B(S64(v).WithElement(lane, BitConverter.DoubleToInt64Bits(x)));

    // ---- comparisons ----
    public static V i8x16_eq(V a, V b) => Vector128.Equals(a, b);
    public static V i8x16_ne(V a, V b) => Not(Vector128.Equals(a, b));
    public static V i8x16_lt_s(V a, V b) => B(Vector128.LessThan(S8(a), S8(b)));
    public static V i8x16_lt_u(V a, V b) => Vector128.LessThan(a, b);
    public static V i8x16_gt_s(V a, V b) => B(Vector128.GreaterThan(S8(a), S8(b)));
    public static V i8x16_gt_u(V a, V b) => Vector128.GreaterThan(a, b);
    public static V i8x16_le_s(V a, V b) => B(Vector128.LessThanOrEqual(S8(a), S8(b)));
    public static V i8x16_le_u(V a, V b) => Vector128.LessThanOrEqual(a, b);
    public static V i8x16_ge_s(V a, V b) => B(Vector128.GreaterThanOrEqual(S8(a), S8(b)));
    public static V i8x16_ge_u(V a, V b) => Vector128.GreaterThanOrEqual(a, b);
    public static V i16x8_eq(V a, V b) => B(Vector128.Equals(S16(a), S16(b)));
    public static V i16x8_ne(V a, V b) => Not(B(Vector128.Equals(S16(a), S16(b))));
    public static V i16x8_lt_s(V a, V b) => B(Vector128.LessThan(S16(a), S16(b)));
    public static V i16x8_lt_u(V a, V b) => B(Vector128.LessThan(U16(a), U16(b)));
    public static V i16x8_gt_s(V a, V b) => B(Vector128.GreaterThan(S16(a), S16(b)));
    public static V i16x8_gt_u(V a, V b) => B(Vector128.GreaterThan(U16(a), U16(b)));
    public static V i16x8_le_s(V a, V b) => B(Vector128.LessThanOrEqual(S16(a), S16(b)));
    public static V i16x8_le_u(V a, V b) => B(Vector128.LessThanOrEqual(U16(a), U16(b)));
    public static V i16x8_ge_s(V a, V b) => B(Vector128.GreaterThanOrEqual(S16(a), S16(b)));
    public static V i16x8_ge_u(V a, V b) => B(Vector128.GreaterThanOrEqual(U16(a), U16(b)));
    public static V i32x4_eq(V a, V b) => B(Vector128.Equals(S32(a), S32(b)));
    public static V i32x4_ne(V a, V b) => Not(B(Vector128.Equals(S32(a), S32(b))));
    public static V i32x4_lt_s(V a, V b) => B(Vector128.LessThan(S32(a), S32(b)));
    public static V i32x4_lt_u(V a, V b) => B(Vector128.LessThan(U32(a), U32(b)));
    public static V i32x4_gt_s(V a, V b) => B(Vector128.GreaterThan(S32(a), S32(b)));
    public static V i32x4_gt_u(V a, V b) => B(Vector128.GreaterThan(U32(a), U32(b)));
    public static V i32x4_le_s(V a, V b) => B(Vector128.LessThanOrEqual(S32(a), S32(b)));
    public static V i32x4_le_u(V a, V b) => B(Vector128.LessThanOrEqual(U32(a), U32(b)));
    public static V i32x4_ge_s(V a, V b) => B(Vector128.GreaterThanOrEqual(S32(a), S32(b)));
    public static V i32x4_ge_u(V a, V b) => B(Vector128.GreaterThanOrEqual(U32(a), U32(b)));
    public static V i64x2_eq(V a, V b) => B(Vector128.Equals(S64(a), S64(b)));
    public static V i64x2_ne(V a, V b) => Not(B(Vector128.Equals(S64(a), S64(b))));
    public static V i64x2_lt_s(V a, V b) => B(Vector128.LessThan(S64(a), S64(b)));
    public static V i64x2_gt_s(V a, V b) => B(Vector128.GreaterThan(S64(a), S64(b)));
    public static V i64x2_le_s(V a, V b) => B(Vector128.LessThanOrEqual(S64(a), S64(b)));
    public static V i64x2_ge_s(V a, V b) => B(Vector128.GreaterThanOrEqual(S64(a), S64(b)));
    public static V f32x4_eq(V a, V b) => B(Vector128.Equals(F32(a), F32(b)));
    public static V f32x4_ne(V a, V b) => Not(B(Vector128.Equals(F32(a), F32(b))));
    public static V f32x4_lt(V a, V b) => B(Vector128.LessThan(F32(a), F32(b)));
    public static V f32x4_gt(V a, V b) => B(Vector128.GreaterThan(F32(a), F32(b)));
    public static V f32x4_le(V a, V b) => B(Vector128.LessThanOrEqual(F32(a), F32(b)));
    public static V f32x4_ge(V a, V b) => B(Vector128.GreaterThanOrEqual(F32(a), F32(b)));
    public static V f64x2_eq(V a, V b) => B(Vector128.Equals(F64(a), F64(b)));
    public static V f64x2_ne(V a, V b) => Not(B(Vector128.Equals(F64(a), F64(b))));
    public static V f64x2_lt(V a, V b) => B(Vector128.LessThan(F64(a), F64(b)));
    public static V f64x2_gt(V a, V b) => B(Vector128.GreaterThan(F64(a), F64(b)));
    public static V f64x2_le(V a, V b) => B(Vector128.LessThanOrEqual(F64(a), F64(b)));
    public static V f64x2_ge(V a, V b) => B(Vector128.GreaterThanOrEqual(F64(a), F64(b)));

    // ---- bitwise ----
    public static V v128_not(V a) => ~a;
    public static V v128_and(V a, V b) => a & b;
    public static V v128_andnot(V a, V b) => Vector128.AndNot(a, b);
    public static V v128_or(V a, V b) => a | b;
    public static V v128_xor(V a, V b) => a ^ b;
    public static V v128_bitselect(V a, V b, V c) => Vector128.ConditionalSelect(c, a, b);
    public static int v128_any_true(V a) => a != V.Zero ? 1 : 0;

    // ---- i8x16 ----
    public static V i8x16_abs(V a) => B(Vector128.Abs(S8(a)));
    public static V i8x16_neg(V a) => B(-S8(a));
    public static V i8x16_popcnt(V a)
    {
        Span<byte> r = stackalloc byte[16];
        for (var i = 0; i < 16; i++) r[i] = (byte)BitOperations.PopCount(a.GetElement(i));
        return Vector128.Create((ReadOnlySpan<byte>)r);
    }
    public static int i8x16_all_true(V a) => Vector128.Equals(a, V.Zero) == V.Zero ? 1 : 0;
    public static int i8x16_bitmask(V a) => (int)a.ExtractMostSignificantBits();
    public static V i8x16_narrow_i16x8_s(V a, V b)
    {
        Span<sbyte> r = stackalloc sbyte[16];
        for (var i = 0; i < 8; i++)
        {
            r[i] = (sbyte)Math.Clamp((int)S16(a).GetElement(i), sbyte.MinValue, sbyte.MaxValue);
            r[i + 8] = (sbyte)Math.Clamp((int)S16(b).GetElement(i), sbyte.MinValue, sbyte.MaxValue);
        }
        return B(Vector128.Create((ReadOnlySpan<sbyte>)r));
    }
    public static V i8x16_narrow_i16x8_u(V a, V b)
    {
        Span<byte> r = stackalloc byte[16];
        for (var i = 0; i < 8; i++)
        {
            r[i] = (byte)Math.Clamp((int)S16(a).GetElement(i), 0, 255);
            r[i + 8] = (byte)Math.Clamp((int)S16(b).GetElement(i), 0, 255);
        }
        return Vector128.Create((ReadOnlySpan<byte>)r);
    }
    public static V i8x16_shl(V a, int n) => Vector128.ShiftLeft(a, n & 7);
    public static V i8x16_shr_s(V a, int n) => B(Vector128.ShiftRightArithmetic(S8(a), n & 7));
    public static V i8x16_shr_u(V a, int n) => Vector128.ShiftRightLogical(a, n & 7);
    public static V i8x16_add(V a, V b) => a + b;
    public static V i8x16_sub(V a, V b) => a - b;
    public static V i8x16_add_sat_s(V a, V b) => Lanes8S(a, b, static (x, y) => Math.Clamp(x + y, sbyte.MinValue, sbyte.MaxValue));
    public static V i8x16_add_sat_u(V a, V b) => Lanes8U(a, b, static (x, y) => Math.Min(x + y, 255));
    public static V i8x16_sub_sat_s(V a, V b) => Lanes8S(a, b, static (x, y) => Math.Clamp(x - y, sbyte.MinValue, sbyte.MaxValue));
    public static V i8x16_sub_sat_u(V a, V b) => Lanes8U(a, b, static (x, y) => Math.Max(x - y, 0));
    public static V i8x16_min_s(V a, V b) => B(Vector128.Min(S8(a), S8(b)));
    public static V i8x16_min_u(V a, V b) => Vector128.Min(a, b);
    public static V i8x16_max_s(V a, V b) => B(Vector128.Max(S8(a), S8(b)));
    public static V i8x16_max_u(V a, V b) => Vector128.Max(a, b);
    public static V i8x16_avgr_u(V a, V b) => (a | b) - Vector128.ShiftRightLogical(a ^ b, 1);

    private static V Lanes8S(V a, V b, Func<int, int, int> f)
    {
        Span<sbyte> r = stackalloc sbyte[16];
        for (var i = 0; i < 16; i++) r[i] = (sbyte)f(S8(a).GetElement(i), S8(b).GetElement(i));
        return B(Vector128.Create((ReadOnlySpan<sbyte>)r));
    }

    private static V Lanes8U(V a, V b, Func<int, int, int> f)
    {
        Span<byte> r = stackalloc byte[16];
        for (var i = 0; i < 16; i++) r[i] = (byte)f(a.GetElement(i), b.GetElement(i));
        return Vector128.Create((ReadOnlySpan<byte>)r);
    }

    // ---- i16x8 ----
    public static V i16x8_extadd_pairwise_i8x16_s(V a)
    {
        Span<short> r = stackalloc short[8];
        for (var i = 0; i < 8; i++) r[i] = (short)(S8(a).GetElement(2 * i) + S8(a).GetElement(2 * i + 1));
        return B(Vector128.Create((ReadOnlySpan<short>)r));
    }
    public static V i16x8_extadd_pairwise_i8x16_u(V a)
    {
        Span<short> r = stackalloc short[8];
        for (var i = 0; i < 8; i++) r[i] = (short)(a.GetElement(2 * i) + a.GetElement(2 * i + 1));
        return B(Vector128.Create((ReadOnlySpan<short>)r));
    }
    public static V i16x8_abs(V a) => B(Vector128.Abs(S16(a)));
    public static V i16x8_neg(V a) => B(-S16(a));
    public static V i16x8_q15mulr_sat_s(V a, V b) => Lanes16S(a, b, static (x, y) => Math.Clamp((x * y + 0x4000) >> 15, short.MinValue, short.MaxValue));
    public static int i16x8_all_true(V a) => Vector128.Equals(S16(a), Vector128<short>.Zero) == Vector128<short>.Zero ? 1 : 0;
    public static int i16x8_bitmask(V a) => (int)S16(a).ExtractMostSignificantBits();
    public static V i16x8_narrow_i32x4_s(V a, V b)
    {
        Span<short> r = stackalloc short[8];
        for (var i = 0; i < 4; i++)
        {
            r[i] = (short)Math.Clamp(S32(a).GetElement(i), short.MinValue, short.MaxValue);
            r[i + 4] = (short)Math.Clamp(S32(b).GetElement(i), short.MinValue, short.MaxValue);
        }
        return B(Vector128.Create((ReadOnlySpan<short>)r));
    }
    public static V i16x8_narrow_i32x4_u(V a, V b)
    {
        Span<ushort> r = stackalloc ushort[8];
        for (var i = 0; i < 4; i++)
        {
            r[i] = (ushort)Math.Clamp(S32(a).GetElement(i), 0, ushort.MaxValue);
            r[i + 4] = (ushort)Math.Clamp(S32(b).GetElement(i), 0, ushort.MaxValue);
        }
        return B(Vector128.Create((ReadOnlySpan<ushort>)r));
    }
    public static V i16x8_extend_low_i8x16_s(V a) => B(Vector128.WidenLower(S8(a)));
    public static V i16x8_extend_high_i8x16_s(V a) => B(Vector128.WidenUpper(S8(a)));
    public static V i16x8_extend_low_i8x16_u(V a) => B(Vector128.WidenLower(a));
    public static V i16x8_extend_high_i8x16_u(V a) => B(Vector128.WidenUpper(a));
    public static V i16x8_shl(V a, int n) => B(Vector128.ShiftLeft(S16(a), n & 15));
    public static V i16x8_shr_s(V a, int n) => B(Vector128.ShiftRightArithmetic(S16(a), n & 15));
    public static V i16x8_shr_u(V a, int n) => B(Vector128.ShiftRightLogical(U16(a), n & 15));
    public static V i16x8_add(V a, V b) => B(S16(a) + S16(b));
    public static V i16x8_add_sat_s(V a, V b) => Lanes16S(a, b, static (x, y) => Math.Clamp(x + y, short.MinValue, short.MaxValue));
    public static V i16x8_add_sat_u(V a, V b) => Lanes16U(a, b, static (x, y) => Math.Min(x + y, ushort.MaxValue));
    public static V i16x8_sub(V a, V b) => B(S16(a) - S16(b));
    public static V i16x8_sub_sat_s(V a, V b) => Lanes16S(a, b, static (x, y) => Math.Clamp(x - y, short.MinValue, short.MaxValue));
    public static V i16x8_sub_sat_u(V a, V b) => Lanes16U(a, b, static (x, y) => Math.Max(x - y, 0));
    public static V i16x8_mul(V a, V b) => B(S16(a) * S16(b));
    public static V i16x8_min_s(V a, V b) => B(Vector128.Min(S16(a), S16(b)));
    public static V i16x8_min_u(V a, V b) => B(Vector128.Min(U16(a), U16(b)));
    public static V i16x8_max_s(V a, V b) => B(Vector128.Max(S16(a), S16(b)));
    public static V i16x8_max_u(V a, V b) => B(Vector128.Max(U16(a), U16(b)));
    public static V i16x8_avgr_u(V a, V b) => B((U16(a) | U16(b)) - Vector128.ShiftRightLogical(U16(a) ^ U16(b), 1));
    public static V i16x8_extmul_low_i8x16_s(V a, V b) => B(Vector128.WidenLower(S8(a)) * Vector128.WidenLower(S8(b)));
    public static V i16x8_extmul_high_i8x16_s(V a, V b) => B(Vector128.WidenUpper(S8(a)) * Vector128.WidenUpper(S8(b)));
    public static V i16x8_extmul_low_i8x16_u(V a, V b) => B(Vector128.WidenLower(a) * Vector128.WidenLower(b));
    public static V i16x8_extmul_high_i8x16_u(V a, V b) => B(Vector128.WidenUpper(a) * Vector128.WidenUpper(b));

    private static V Lanes16S(V a, V b, Func<int, int, int> f)
    {
        Span<short> r = stackalloc short[8];
        for (var i = 0; i < 8; i++) r[i] = (short)f(S16(a).GetElement(i), S16(b).GetElement(i));
        return B(Vector128.Create((ReadOnlySpan<short>)r));
    }

    private static V Lanes16U(V a, V b, Func<int, int, int> f)
    {
        Span<ushort> r = stackalloc ushort[8];
        for (var i = 0; i < 8; i++) r[i] = (ushort)f(U16(a).GetElement(i), U16(b).GetElement(i));
        return B(Vector128.Create((ReadOnlySpan<ushort>)r));
    }

    // ---- i32x4 ----
    public static V i32x4_extadd_pairwise_i16x8_s(V a)
    {
        Span<int> r = stackalloc int[4];
        for (var i = 0; i < 4; i++) r[i] = S16(a).GetElement(2 * i) + S16(a).GetElement(2 * i + 1);
        return B(Vector128.Create((ReadOnlySpan<int>)r));
    }
    public static V i32x4_extadd_pairwise_i16x8_u(V a)
    {
        Span<int> r = stackalloc int[4];
        for (var i = 0; i < 4; i++) r[i] = U16(a).GetElement(2 * i) + U16(a).GetElement(2 * i + 1);
        return B(Vector128.Create((ReadOnlySpan<int>)r));
    }
    public static V i32x4_abs(V a) => B(Vector128.Abs(S32(a)));
    public static V i32x4_neg(V a) => B(-S32(a));
    public static int i32x4_all_true(V a) => Vector128.Equals(S32(a), Vector128<int>.Zero) == Vector128<int>.Zero ? 1 : 0;
    public static int i32x4_bitmask(V a) => (int)S32(a).ExtractMostSignificantBits();
    public static V i32x4_extend_low_i16x8_s(V a) => B(Vector128.WidenLower(S16(a)));
    public static V i32x4_extend_high_i16x8_s(V a) => B(Vector128.WidenUpper(S16(a)));
    public static V i32x4_extend_low_i16x8_u(V a) => B(Vector128.WidenLower(U16(a)));
    public static V i32x4_extend_high_i16x8_u(V a) => B(Vector128.WidenUpper(U16(a)));
    public static V i32x4_shl(V a, int n) => B(Vector128.ShiftLeft(S32(a), n & 31));
    public static V i32x4_shr_s(V a, int n) => B(Vector128.ShiftRightArithmetic(S32(a), n & 31));
    public static V i32x4_shr_u(V a, int n) => B(Vector128.ShiftRightLogical(U32(a), n & 31));
    public static V i32x4_add(V a, V b) => B(S32(a) + S32(b));
    public static V i32x4_sub(V a, V b) => B(S32(a) - S32(b));
    public static V i32x4_mul(V a, V b) => B(S32(a) * S32(b));
    public static V i32x4_min_s(V a, V b) => B(Vector128.Min(S32(a), S32(b)));
    public static V i32x4_min_u(V a, V b) => B(Vector128.Min(U32(a), U32(b)));
    public static V i32x4_max_s(V a, V b) => B(Vector128.Max(S32(a), S32(b)));
    public static V i32x4_max_u(V a, V b) => B(Vector128.Max(U32(a), U32(b)));
    public static V i32x4_dot_i16x8_s(V a, V b)
    {
        Span<int> r = stackalloc int[4];
        for (var i = 0; i < 4; i++)
        {
            r[i] = unchecked(S16(a).GetElement(2 * i) * S16(b).GetElement(2 * i) + S16(a).GetElement(2 * i + 1) * S16(b).GetElement(2 * i + 1));
        }
        return B(Vector128.Create((ReadOnlySpan<int>)r));
    }
    public static V i32x4_extmul_low_i16x8_s(V a, V b) => B(Vector128.WidenLower(S16(a)) * Vector128.WidenLower(S16(b)));
    public static V i32x4_extmul_high_i16x8_s(V a, V b) => B(Vector128.WidenUpper(S16(a)) * Vector128.WidenUpper(S16(b)));
    public static V i32x4_extmul_low_i16x8_u(V a, V b) => B(Vector128.WidenLower(U16(a)) * Vector128.WidenLower(U16(b)));
    public static V i32x4_extmul_high_i16x8_u(V a, V b) => B(Vector128.WidenUpper(U16(a)) * Vector128.WidenUpper(U16(b)));

    // ---- i64x2 ----
    public static V i64x2_abs(V a) => B(Vector128.Abs(S64(a)));
    public static V i64x2_neg(V a) => B(-S64(a));
    public static int i64x2_all_true(V a) => Vector128.Equals(S64(a), Vector128<long>.Zero) == Vector128<long>.Zero ? 1 : 0;
    public static int i64x2_bitmask(V a) => (int)S64(a).ExtractMostSignificantBits();
    public static V i64x2_extend_low_i32x4_s(V a) => B(Vector128.WidenLower(S32(a)));
    public static V i64x2_extend_high_i32x4_s(V a) => B(Vector128.WidenUpper(S32(a)));
    public static V i64x2_extend_low_i32x4_u(V a) => B(Vector128.WidenLower(U32(a)));
    public static V i64x2_extend_high_i32x4_u(V a) => B(Vector128.WidenUpper(U32(a)));
    public static V i64x2_shl(V a, int n) => B(Vector128.ShiftLeft(S64(a), n & 63));
    public static V i64x2_shr_s(V a, int n) => B(Vector128.ShiftRightArithmetic(S64(a), n & 63));
    public static V i64x2_shr_u(V a, int n) => B(Vector128.ShiftRightLogical(a.AsUInt64(), n & 63));
    public static V i64x2_add(V a, V b) => B(S64(a) + S64(b));
    public static V i64x2_sub(V a, V b) => B(S64(a) - S64(b));
    public static V i64x2_mul(V a, V b) => B(S64(a) * S64(b));
    public static V i64x2_extmul_low_i32x4_s(V a, V b) => B(Vector128.WidenLower(S32(a)) * Vector128.WidenLower(S32(b)));
    public static V i64x2_extmul_high_i32x4_s(V a, V b) => B(Vector128.WidenUpper(S32(a)) * Vector128.WidenUpper(S32(b)));
    public static V i64x2_extmul_low_i32x4_u(V a, V b) => B(Vector128.WidenLower(U32(a)) * Vector128.WidenLower(U32(b)));
    public static V i64x2_extmul_high_i32x4_u(V a, V b) => B(Vector128.WidenUpper(U32(a)) * Vector128.WidenUpper(U32(b)));

    // ---- f32x4 ----
    private static readonly V SignMask32 = B(Vector128.Create(int.MinValue));
    private static readonly V SignMask64 = B(Vector128.Create(long.MinValue));

    public static V f32x4_abs(V a) => Vector128.AndNot(a, SignMask32);
    public static V f32x4_neg(V a) => a ^ SignMask32;
    public static V f32x4_sqrt(V a) => B(Vector128.Sqrt(F32(a)));
    public static V f32x4_add(V a, V b) => B(F32(a) + F32(b));
    public static V f32x4_sub(V a, V b) => B(F32(a) - F32(b));
    public static V f32x4_mul(V a, V b) => B(F32(a) * F32(b));
    public static V f32x4_div(V a, V b) => B(F32(a) / F32(b));
    public static V f32x4_min(V a, V b) => LanesF32(a, b, ScalarOps.F32Min);
    public static V f32x4_max(V a, V b) => LanesF32(a, b, ScalarOps.F32Max);
    public static V f32x4_pmin(V a, V b) => LanesF32(a, b, static (x, y) => y < x ? y : x);
    public static V f32x4_pmax(V a, V b) => LanesF32(a, b, static (x, y) => x < y ? y : x);
    public static V f32x4_ceil(V a) => LanesF32(a, a, static (x, _) => MathF.Ceiling(x));
    public static V f32x4_floor(V a) => LanesF32(a, a, static (x, _) => MathF.Floor(x));
    public static V f32x4_trunc(V a) => LanesF32(a, a, static (x, _) => MathF.Truncate(x));
    public static V f32x4_nearest(V a) => LanesF32(a, a, static (x, _) => MathF.Round(x, MidpointRounding.ToEven));

    private static V LanesF32(V a, V b, Func<float, float, float> f)
    {
        Span<float> r = stackalloc float[4];
        for (var i = 0; i < 4; i++) r[i] = f(F32(a).GetElement(i), F32(b).GetElement(i));
        return B(Vector128.Create((ReadOnlySpan<float>)r));
    }

    // ---- f64x2 ----
    public static V f64x2_abs(V a) => Vector128.AndNot(a, SignMask64);
    public static V f64x2_neg(V a) => a ^ SignMask64;
    public static V f64x2_sqrt(V a) => B(Vector128.Sqrt(F64(a)));
    public static V f64x2_add(V a, V b) => B(F64(a) + F64(b));
    public static V f64x2_sub(V a, V b) => B(F64(a) - F64(b));
    public static V f64x2_mul(V a, V b) => B(F64(a) * F64(b));
    public static V f64x2_div(V a, V b) => B(F64(a) / F64(b));
    public static V f64x2_min(V a, V b) => LanesF64(a, b, ScalarOps.F64Min);
    public static V f64x2_max(V a, V b) => LanesF64(a, b, ScalarOps.F64Max);
    public static V f64x2_pmin(V a, V b) => LanesF64(a, b, static (x, y) => y < x ? y : x);
    public static V f64x2_pmax(V a, V b) => LanesF64(a, b, static (x, y) => x < y ? y : x);
    public static V f64x2_ceil(V a) => LanesF64(a, a, static (x, _) => Math.Ceiling(x));
    public static V f64x2_floor(V a) => LanesF64(a, a, static (x, _) => Math.Floor(x));
    public static V f64x2_trunc(V a) => LanesF64(a, a, static (x, _) => Math.Truncate(x));
    public static V f64x2_nearest(V a) => LanesF64(a, a, static (x, _) => Math.Round(x, MidpointRounding.ToEven));

    private static V LanesF64(V a, V b, Func<double, double, double> f) =>
        B(Vector128.Create(f(F64(a).GetElement(0), F64(b).GetElement(0)), f(F64(a).GetElement(1), F64(b).GetElement(1))));

    // ---- conversions ----
    public static V i32x4_trunc_sat_f32x4_s(V a) => B(Vector128.Create((int)F32(a).GetElement(0), (int)F32(a).GetElement(1), (int)F32(a).GetElement(2), (int)F32(a).GetElement(3)));
    public static V i32x4_trunc_sat_f32x4_u(V a) => B(Vector128.Create((uint)F32(a).GetElement(0), (uint)F32(a).GetElement(1), (uint)F32(a).GetElement(2), (uint)F32(a).GetElement(3)));
    public static V f32x4_convert_i32x4_s(V a) => B(Vector128.Create((float)S32(a).GetElement(0), S32(a).GetElement(1), S32(a).GetElement(2), S32(a).GetElement(3)));
    public static V f32x4_convert_i32x4_u(V a) => B(Vector128.Create((float)U32(a).GetElement(0), U32(a).GetElement(1), U32(a).GetElement(2), U32(a).GetElement(3)));
    public static V i32x4_trunc_sat_f64x2_s_zero(V a) => B(Vector128.Create((int)F64(a).GetElement(0), (int)F64(a).GetElement(1), 0, 0));
    public static V i32x4_trunc_sat_f64x2_u_zero(V a) => B(Vector128.Create((uint)F64(a).GetElement(0), (uint)F64(a).GetElement(1), 0, 0));
    public static V f64x2_convert_low_i32x4_s(V a) => B(Vector128.Create((double)S32(a).GetElement(0), S32(a).GetElement(1)));
    public static V f64x2_convert_low_i32x4_u(V a) => B(Vector128.Create((double)U32(a).GetElement(0), U32(a).GetElement(1)));
    public static V f32x4_demote_f64x2_zero(V a) => B(Vector128.Create((float)F64(a).GetElement(0), (float)F64(a).GetElement(1), 0f, 0f));
    public static V f64x2_promote_low_f32x4(V a) => B(Vector128.Create((double)F32(a).GetElement(0), F32(a).GetElement(1)));
}
