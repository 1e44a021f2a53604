using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Results beyond the first of a multi-value function travel here (per thread; floats as bits so NaN payloads survive): the callee stores them just
/// before returning, the caller reads them right after. Multi-value functions are rare in compiled C, so this
/// simple path costs nothing elsewhere.
/// </summary>
public static class MultiReturn
{
    [ThreadStatic] private static long[]? ints;
    [ThreadStatic] private static Vector128<byte>[]? vectors;
    [ThreadStatic] private static object?[]? refs;

    private static T[] Ensure<T>(ref T[]? a, int index)
    {
        if (a is null || a.Length <= index) Array.Resize(ref a, Math.Max(index + 1, 8));
        return a;
    }

    public static void SetI32(int v, int index) => Ensure(ref ints, index)[index] = v;
    public static void SetI64(long v, int index) => Ensure(ref ints, index)[index] = v;
    public static void SetF32(float v, int index) => Ensure(ref ints, index)[index] = BitConverter.SingleToInt32Bits(v);
    public static void SetF64(double v, int index) => Ensure(ref ints, index)[index] = BitConverter.DoubleToInt64Bits(v);
    public static void SetV128(Vector128<byte> v, int index) => Ensure(ref vectors, index)[index] = v;
    public static void SetRef(object? v, int index) => Ensure(ref refs, index)[index] = v;
    public static int GetI32(int index) => (int)Ensure(ref ints, index)[index];
    public static long GetI64(int index) => Ensure(ref ints, index)[index];
    public static float GetF32(int index) => BitConverter.Int32BitsToSingle((int)Ensure(ref ints, index)[index]);
    public static double GetF64(int index) => BitConverter.Int64BitsToDouble(Ensure(ref ints, index)[index]);
    public static Vector128<byte> GetV128(int index) => Ensure(ref vectors, index)[index];
    public static object? GetRef(int index) => Ensure(ref refs, index)[index];
}
