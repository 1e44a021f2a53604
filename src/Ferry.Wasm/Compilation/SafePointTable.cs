using System.Collections.Concurrent;
using System.Reflection;
using System.Reflection.Emit;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Compilation;

/// <summary>Where a frame's saved values go: how many are operand-stack values, and which locals the rest are.</summary>
public sealed record SafePointLayout(ValueType[] Stack, int[] LiveLocals);

/// <summary>
/// The layout of every safe point of a compiled module, filled in by the compiler. The unwind path of a safe
/// point passes only values (one call, one argument per value); the runtime looks the layout up here to know
/// what they were.
/// </summary>
public sealed class SafePointTable
{
    private readonly ConcurrentDictionary<(int Function, int SafePoint), SafePointLayout> layouts = new();

    public void Register(int function, int safePoint, SafePointLayout layout) => layouts[(function, safePoint)] = layout;

    public SafePointLayout Get(int function, int safePoint) =>
        layouts.TryGetValue((function, safePoint), out var l) ? l : throw new FrameMismatchException($"function {function} has no safe point {safePoint}");

    public bool Contains(int function, int safePoint) => layouts.ContainsKey((function, safePoint));
}

/// <summary>
/// Static "save" methods, one per sequence of value types, shared by every safe point whose saved values have
/// that shape: <c>save(ctx, function, safePoint, v0, v1, …)</c> pushes the values and completes the frame.
/// This keeps each safe point's unwind path to a handful of IL instructions (RyuJIT stops optimising methods
/// with more than 20,000 IL instructions or 8,000 local references, so the cold paths must stay small).
/// </summary>
internal sealed class SaveShapes(TypeBuilder type, Type? existing)
{
    /// <summary>The name of every save method starts with this (then one letter per value type).</summary>
    public const string NamePrefix = "save_";

    private readonly Dictionary<string, MethodInfo> methods = [];

    public static string Key(IReadOnlyList<ValueType> types) => string.Concat(types.Select(t => (char)('a' + ClrTypes.Index(t))));

    public MethodInfo Get(IReadOnlyList<ValueType> types)
    {
        var key = Key(types);
        if (methods.TryGetValue(key, out var m)) return m;
        var name = NamePrefix + key;
        if (existing?.GetMethod(name, BindingFlags.Public | BindingFlags.Static) is { } found) return methods[key] = found;
        var ps = new Type[3 + types.Count];
        ps[0] = typeof(InstanceBase);
        ps[1] = typeof(int);
        ps[2] = typeof(int);
        for (var i = 0; i < types.Count; i++) ps[3 + i] = ClrTypes.Of(types[i]);
        var mb = type.DefineMethod(name, MethodAttributes.Public | MethodAttributes.Static, typeof(void), ps);
        mb.SetImplementationFlags(MethodImplAttributes.NoInlining);
        var il = mb.GetILGenerator();
        for (var i = 0; i < types.Count; i++)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, Members.Frames);
            il.Emit(OpCodes.Ldarg, (short)(3 + i));
            il.Emit(OpCodes.Call, Members.PushValue(types[i]));
        }
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Call, Members.CompleteSave);
        il.Emit(OpCodes.Ret);
        return methods[key] = mb;
    }
}
