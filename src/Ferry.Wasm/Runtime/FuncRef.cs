using System.Collections.Concurrent;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// A callable function value: what tables hold, what imports bind to, what exports give out.
/// Compiled code calls it with <c>calli</c> on <see cref="Code"/>, passing <see cref="Target"/> and the call depth
/// before the WebAssembly arguments — one calling convention for Wasm functions of any instance and host functions.
/// </summary>
public sealed class FuncRef
{
    public readonly nint Code;
    public readonly object Target;
    /// <summary>Process-wide id of the function's type; structurally equal types share one id.</summary>
    public readonly int TypeId;

    public FuncRef(nint code, object target, FuncType type, Instance? owner, int functionIndex)
    {
        Code = code;
        Target = target;
        Type = type;
        TypeId = FuncTypeIds.Of(type);
        Owner = owner;
        FunctionIndex = functionIndex;
    }

    public FuncType Type { get; }
    /// <summary>The instance that defines the function, or null for host functions.</summary>
    public Instance? Owner { get; }
    /// <summary>Index in the owner's function space (-1 for host functions).</summary>
    public int FunctionIndex { get; }

    public override string ToString() => Owner is null ? "host function" : $"function {FunctionIndex}";
}

/// <summary>Canonical ids for function types, so call_indirect compares one integer.</summary>
public static class FuncTypeIds
{
    private static readonly ConcurrentDictionary<FuncType, int> Ids = new();
    private static int next;

    public static int Of(FuncType type) => Ids.GetOrAdd(type, _ => Interlocked.Increment(ref next));
}

/// <summary>A host-provided function: a typed delegate whose parameters and result match <see cref="Type"/>.</summary>
public sealed class HostFunction
{
    public HostFunction(FuncType type, Delegate implementation, string name)
    {
        Type = type;
        Implementation = implementation;
        Name = name;
    }

    public FuncType Type { get; }
    public Delegate Implementation { get; }
    public string Name { get; }
}
