using System.Runtime.Intrinsics;

namespace Ferry.Wasm.Compilation;

/// <summary>How WebAssembly types are represented in IL.</summary>
internal static class ClrTypes
{
    public static Type Of(ValueType t) => t switch
    {
        ValueType.I32 => typeof(int),
        ValueType.I64 => typeof(long),
        ValueType.F32 => typeof(float),
        ValueType.F64 => typeof(double),
        ValueType.V128 => typeof(Vector128<byte>),
        _ => typeof(object), // funcref (a FuncRef or null) and externref
    };

    /// <summary>Dense index per value type, for per-type tables.</summary>
    public static int Index(ValueType t) => t switch
    {
        ValueType.I32 => 0,
        ValueType.I64 => 1,
        ValueType.F32 => 2,
        ValueType.F64 => 3,
        ValueType.V128 => 4,
        ValueType.FuncRef => 5,
        _ => 6,
    };

    public const int Count = 7;

    public static Type Return(FuncType t) => t.Results.Length == 0 ? typeof(void) : Of(t.Results[0]);

    /// <summary>
    /// Parameter list of a compiled function: the WebAssembly parameters, then the instance, then the call depth.
    /// Arguments computed on the IL stack can then be passed as they are, with the two extra ones pushed after.
    /// </summary>
    public static Type[] Parameters(FuncType t, Type instanceType)
    {
        var n = t.Parameters.Length;
        var ps = new Type[n + 2];
        for (var i = 0; i < n; i++) ps[i] = Of(t.Parameters[i]);
        ps[n] = instanceType;
        ps[n + 1] = typeof(int);
        return ps;
    }
}
