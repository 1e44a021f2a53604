using System.Collections.Concurrent;
using System.Reflection;
using System.Reflection.Emit;
using Ferry.Wasm.Compilation;

namespace Ferry.Wasm.Runtime;

/// <summary>
/// Makes host delegates callable through <see cref="FuncRef"/>'s calling convention: per delegate type, a
/// generated static method <c>(object target, int depth, params…)</c> that invokes the delegate stored as target.
/// </summary>
internal static class HostStubs
{
    private static readonly ConcurrentDictionary<Type, nint> Stubs = new();
    private static int counter;

    public static FuncRef Create(HostFunction f)
    {
        var code = Stubs.GetOrAdd(f.Implementation.GetType(), t => Build(t, f.Type));
        return new FuncRef(code, f.Implementation, f.Type, null, -1);
    }

    public static void CheckSignature(FuncType type, Delegate d)
    {
        var invoke = d.GetType().GetMethod("Invoke")!;
        var ps = invoke.GetParameters();
        if (type.Results.Length > 1) throw new ArgumentException("host functions with several results are not supported");
        var ok = ps.Length == type.Parameters.Length && invoke.ReturnType == ClrTypes.Return(type);
        for (var i = 0; ok && i < ps.Length; i++) ok = ps[i].ParameterType == ClrTypes.Of(type.Parameters[i]);
        if (!ok) throw new ArgumentException($"delegate {d.GetType().Name} does not match WebAssembly type {type}");
    }

    private static nint Build(Type delegateType, FuncType type)
    {
        var invoke = delegateType.GetMethod("Invoke")!;
        var n = Interlocked.Increment(ref counter);
        var name = new AssemblyName($"Ferry.Wasm.HostStub{n}");
        var ab = AssemblyBuilder.DefineDynamicAssembly(name, AssemblyBuilderAccess.Run);
        var tb = ab.DefineDynamicModule(name.Name!).DefineType("Stub", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Abstract);
        var mb = tb.DefineMethod("Invoke", MethodAttributes.Public | MethodAttributes.Static, ClrTypes.Return(type), ClrTypes.Parameters(type, typeof(object)));
        var il = mb.GetILGenerator();
        il.Emit(OpCodes.Ldarg, (short)type.Parameters.Length);
        il.Emit(OpCodes.Castclass, delegateType);
        for (var i = 0; i < type.Parameters.Length; i++) il.Emit(OpCodes.Ldarg, (short)i);
        il.Emit(OpCodes.Callvirt, invoke);
        il.Emit(OpCodes.Ret);
        var created = tb.CreateType();
        return created.GetMethod("Invoke")!.MethodHandle.GetFunctionPointer();
    }
}

/// <summary>Calls any <see cref="FuncRef"/> from the host with <see cref="WasmValue"/> arguments.</summary>
internal static class Invokers
{
    private delegate void Invoker(FuncRef f, WasmValue[] args, WasmValue[] results);

    private static readonly ConcurrentDictionary<FuncType, Invoker> Cache = new();

    public static WasmValue[] Invoke(FuncRef f, ReadOnlySpan<WasmValue> args)
    {
        var t = f.Type;
        if (args.Length != t.Parameters.Length) throw new ArgumentException($"expected {t.Parameters.Length} arguments, got {args.Length}");
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i].Type != t.Parameters[i]) throw new ArgumentException($"argument {i} is {args[i].Type.Name()}, expected {t.Parameters[i].Name()}");
        }
        var results = new WasmValue[t.Results.Length];
        Cache.GetOrAdd(t, Build)(f, args.ToArray(), results);
        return results;
    }

    private static Invoker Build(FuncType t)
    {
        var dm = new DynamicMethod("invoke", typeof(void), [typeof(FuncRef), typeof(WasmValue[]), typeof(WasmValue[])], typeof(Invokers).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        for (var i = 0; i < t.Parameters.Length; i++)
        {
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldc_I4, i);
            il.Emit(OpCodes.Ldelema, typeof(WasmValue));
            il.Emit(OpCodes.Call, Getter(t.Parameters[i]));
        }
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, typeof(FuncRef).GetField(nameof(FuncRef.Target))!);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, typeof(FuncRef).GetField(nameof(FuncRef.Code))!);
        il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, ClrTypes.Return(t), ClrTypes.Parameters(t, typeof(object)), null);
        if (t.Results.Length > 0)
        {
            var tmp = il.DeclareLocal(ClrTypes.Of(t.Results[0]));
            il.Emit(OpCodes.Stloc, tmp);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Ldloc, tmp);
            EmitWrap(il, t.Results[0]);
            il.Emit(OpCodes.Stelem, typeof(WasmValue));
            for (var i = 1; i < t.Results.Length; i++)
            {
                il.Emit(OpCodes.Ldarg_2);
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Call, typeof(MultiReturn).GetMethod("Get" + Suffix(t.Results[i]))!);
                EmitWrap(il, t.Results[i]);
                il.Emit(OpCodes.Stelem, typeof(WasmValue));
            }
        }
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<Invoker>();
    }

    private static string Suffix(ValueType t) => t switch
    {
        ValueType.I32 => "I32",
        ValueType.I64 => "I64",
        ValueType.F32 => "F32",
        ValueType.F64 => "F64",
        ValueType.V128 => "V128",
        _ => "Ref",
    };

    private static MethodInfo Getter(ValueType t) => typeof(WasmValue).GetProperty(t switch
    {
        ValueType.I32 => nameof(WasmValue.I32),
        ValueType.I64 => nameof(WasmValue.I64),
        ValueType.F32 => nameof(WasmValue.F32),
        ValueType.F64 => nameof(WasmValue.F64),
        ValueType.V128 => nameof(WasmValue.V128),
        _ => nameof(WasmValue.Ref),
    })!.GetMethod!;

    private static void EmitWrap(ILGenerator il, ValueType t)
    {
        switch (t)
        {
            case ValueType.I32: il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromI32))!); break;
            case ValueType.I64: il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromI64))!); break;
            case ValueType.F32: il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromF32))!); break;
            case ValueType.F64: il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromF64))!); break;
            case ValueType.V128: il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromV128), [typeof(System.Runtime.Intrinsics.Vector128<byte>)])!); break;
            default:
                var local = il.DeclareLocal(typeof(object));
                il.Emit(OpCodes.Stloc, local);
                il.Emit(OpCodes.Ldc_I4, (int)t);
                il.Emit(OpCodes.Ldloc, local);
                il.Emit(OpCodes.Call, typeof(WasmValue).GetMethod(nameof(WasmValue.FromRef))!);
                break;
        }
    }
}
