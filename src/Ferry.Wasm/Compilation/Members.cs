using System.Reflection;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Compilation;

/// <summary>Reflection handles of runtime members that compiled code references, looked up once.</summary>
internal static class Members
{
    private const BindingFlags Static = BindingFlags.Public | BindingFlags.Static;
    private const BindingFlags Inst = BindingFlags.Public | BindingFlags.Instance;

    public static readonly FieldInfo Interrupt = typeof(InstanceBase).GetField(nameof(InstanceBase.Interrupt))!;
    public static readonly FieldInfo Memory0 = typeof(InstanceBase).GetField(nameof(InstanceBase.Memory0))!;
    public static readonly FieldInfo Tables = typeof(InstanceBase).GetField(nameof(InstanceBase.Tables))!;
    public static readonly FieldInfo Functions = typeof(InstanceBase).GetField(nameof(InstanceBase.Functions))!;
    public static readonly FieldInfo Frames = typeof(InstanceBase).GetField(nameof(InstanceBase.Frames))!;
    public static readonly FieldInfo DirtyPages = typeof(InstanceBase).GetField(nameof(InstanceBase.DirtyPages))!;
    public static readonly FieldInfo MemoryBase = typeof(LinearMemory).GetField(nameof(LinearMemory.Base))!;
    public static readonly FieldInfo UnwindSignal = typeof(InstanceBase).GetField(nameof(InstanceBase.UnwindSignal))!;
    public static readonly MethodInfo MemViewOf = typeof(MemView).GetMethod(nameof(MemView.Of))!;
    public static readonly FieldInfo MemViewSize = typeof(MemView).GetField(nameof(MemView.Size))!;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(bool, string, Type), MethodInfo> Generic = new();

    /// <summary>Typed access helper <paramref name="name"/> of <see cref="Mem32{T}"/> or <see cref="Mem64{T}"/> for <paramref name="t"/>.</summary>
    public static MethodInfo MemAccess(bool memory64, string name, Type t) =>
        Generic.GetOrAdd((memory64, name, t), static k => (k.Item1 ? typeof(Mem64<>) : typeof(Mem32<>)).MakeGenericType(k.Item3).GetMethod(k.Item2)!);

    public static MethodInfo MemAddr(bool memory64, string name) => Method(memory64 ? typeof(Mem64) : typeof(Mem32), name);
    public static readonly FieldInfo MemorySize = typeof(LinearMemory).GetField(nameof(LinearMemory.Size))!;
    public static readonly FieldInfo TableElements = typeof(Table).GetField(nameof(Table.Elements))!;
    public static readonly FieldInfo FuncCode = typeof(FuncRef).GetField(nameof(FuncRef.Code))!;
    public static readonly FieldInfo FuncTarget = typeof(FuncRef).GetField(nameof(FuncRef.Target))!;

    public static FieldInfo CellField(ValueType t) => typeof(GlobalCell).GetField(t switch
    {
        ValueType.I32 => nameof(GlobalCell.I32),
        ValueType.I64 => nameof(GlobalCell.I64),
        ValueType.F32 => nameof(GlobalCell.F32),
        ValueType.F64 => nameof(GlobalCell.F64),
        ValueType.V128 => nameof(GlobalCell.V128),
        _ => nameof(GlobalCell.Ref),
    })!;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(Type, string), MethodInfo> MethodCache = new();

    public static MethodInfo Method(Type t, string name) =>
        MethodCache.GetOrAdd((t, name), static k => k.Item1.GetMethod(k.Item2, Static | Inst) ?? throw new MissingMethodException(k.Item1.Name, k.Item2));

    public static readonly MethodInfo EnterCheck = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.Enter));
    public static readonly MethodInfo CallIndirectTarget = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.CallIndirectTarget));
    public static readonly MethodInfo TrapUnreachable = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.Unreachable));
    public static readonly MethodInfo ResumeEntry = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.NextResumeEntry));
    public static readonly MethodInfo FrameMismatch = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.BadSafePoint));
    public static readonly MethodInfo IsRewinding = typeof(FrameStack).GetProperty(nameof(FrameStack.IsRewinding))!.GetMethod!;
    public static readonly MethodInfo BeginRewind = Method(typeof(FrameStack), nameof(FrameStack.BeginRewind));
    public static readonly MethodInfo EndRewindFrame = Method(typeof(FrameStack), nameof(FrameStack.EndRewindFrame));
    public static readonly MethodInfo EndRewindInnermostFrame = Method(typeof(FrameStack), nameof(FrameStack.EndRewindInnermostFrame));
    public static readonly MethodInfo EndFrame = Method(typeof(FrameStack), nameof(FrameStack.EndFrame));

    private static readonly string[] TypeSuffix = ["I32", "I64", "F32", "F64", "V128", "FuncRef", "ExternRef"];

    public static MethodInfo PushValue(ValueType t) => Method(typeof(FrameStack), "PushValue" + TypeSuffix[ClrTypes.Index(t)]);
    public static readonly MethodInfo CompleteSave = Method(typeof(RuntimeChecks), nameof(RuntimeChecks.CompleteSave));

    public static MethodInfo SaveLocal(ValueType t) => Method(typeof(FrameStack), "SaveLocal" + TypeSuffix[ClrTypes.Index(t)]);
    public static MethodInfo SaveStack(ValueType t) => Method(typeof(FrameStack), "SaveStack" + TypeSuffix[ClrTypes.Index(t)]);
    public static MethodInfo RestoreLocal(ValueType t) => Method(typeof(FrameStack), "RestoreLocal" + TypeSuffix[ClrTypes.Index(t)]);
    public static MethodInfo LoadStack(ValueType t) => Method(typeof(FrameStack), "LoadStack" + TypeSuffix[ClrTypes.Index(t)]);

    private static readonly string[] MultiSuffix = ["I32", "I64", "F32", "F64", "V128", "Ref", "Ref"];
    public static MethodInfo MultiSet(ValueType t) => Method(typeof(MultiReturn), "Set" + MultiSuffix[ClrTypes.Index(t)]);
    public static MethodInfo MultiGet(ValueType t) => Method(typeof(MultiReturn), "Get" + MultiSuffix[ClrTypes.Index(t)]);

    public static readonly MethodInfo MemFill32 = Method(typeof(MemoryOps), nameof(MemoryOps.Fill32));
    public static readonly MethodInfo MemFill64 = Method(typeof(MemoryOps), nameof(MemoryOps.Fill64));
    public static readonly MethodInfo MemCopy32 = Method(typeof(MemoryOps), nameof(MemoryOps.Copy32));
    public static readonly MethodInfo MemCopy64 = Method(typeof(MemoryOps), nameof(MemoryOps.Copy64));
    public static readonly MethodInfo MemInit32 = Method(typeof(MemoryOps), nameof(MemoryOps.Init32));
    public static readonly MethodInfo MemInit64 = Method(typeof(MemoryOps), nameof(MemoryOps.Init64));
    public static readonly MethodInfo DataDrop = Method(typeof(MemoryOps), nameof(MemoryOps.DropData));
    public static readonly MethodInfo Grow32 = Method(typeof(MemoryOps), nameof(MemoryOps.Grow32));
    public static readonly MethodInfo Grow64 = Method(typeof(MemoryOps), nameof(MemoryOps.Grow64));

    public static readonly MethodInfo TableGet = Method(typeof(TableOps), nameof(TableOps.Get));
    public static readonly MethodInfo TableSet = Method(typeof(TableOps), nameof(TableOps.Set));
    public static readonly MethodInfo TableSize = Method(typeof(TableOps), nameof(TableOps.Size));
    public static readonly MethodInfo TableGrow = Method(typeof(TableOps), nameof(TableOps.Grow));
    public static readonly MethodInfo TableFill = Method(typeof(TableOps), nameof(TableOps.Fill));
    public static readonly MethodInfo TableCopy = Method(typeof(TableOps), nameof(TableOps.Copy));
    public static readonly MethodInfo TableInit = Method(typeof(TableOps), nameof(TableOps.Init));
    public static readonly MethodInfo ElemDrop = Method(typeof(TableOps), nameof(TableOps.DropElements));
    public static readonly MethodInfo RefFunc = Method(typeof(TableOps), nameof(TableOps.RefFunc));

    public static readonly MethodInfo V128Const = Method(typeof(SimdOps), nameof(SimdOps.Const));

    public static MethodInfo Select(ValueType t) =>
        Method(typeof(RuntimeChecks), "Select" + (t.IsRef() ? "Ref" : TypeSuffix[ClrTypes.Index(t)]));
}
