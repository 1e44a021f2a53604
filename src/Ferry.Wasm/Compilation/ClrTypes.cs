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

    /// <summary>Parameter list of a compiled function: instance, call depth, then the WebAssembly parameters.</summary>
    public static Type[] Parameters(FuncType t, Type instanceType)
    {
        var ps = new Type[t.Parameters.Length + 2];
        ps[0] = instanceType;
        ps[1] = typeof(int);
        for (var i = 0; i < t.Parameters.Length; i++) ps[i + 2] = Of(t.Parameters[i]);
        return ps;
    }
}
