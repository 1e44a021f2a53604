using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;
using System.Text;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// A module compiled to IL: one generated class (derived from <see cref="InstanceBase"/>) whose static methods
/// are the module's functions. Shared by all instances of the module.
/// </summary>
public sealed class CompiledModule
{
    internal CompiledModule(Module module, ModuleLayout layout, TimeSpan compileTime)
    {
        Module = module;
        Layout = layout;
        CompileTime = compileTime;
        var pointers = new nint[module.FunctionCount];
        for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
        {
            pointers[i] = layout.Methods[i]!.MethodHandle.GetFunctionPointer();
        }
        FunctionPointers = pointers;
        prepared = new bool[module.FunctionCount];
        ilSizes = new int[module.FunctionCount];
    }

    /// <summary>
    /// Entry points of resume versions, per (function, safe point); safe point -1 is a version for all of them. See
    /// <see cref="ResumeCompiler"/>.
    /// </summary>
    internal Dictionary<(int Function, int SafePoint), nint> ResumeEntries { get; } = [];
    internal Lock ResumeLock { get; } = new();

    private readonly bool[] prepared;
    private readonly Lock prepareLock = new();
    private readonly int[] ilSizes;

    /// <summary>The layout of every safe point of the module's code.</summary>
    public SafePointTable SafePoints => Layout.SafePoints;

    /// <summary>Entry of a resume version of <paramref name="function"/> that rebuilds a frame stopped at <paramref name="safePoint"/>.</summary>
    public nint ResumeEntry(int function, int safePoint)
    {
        lock (ResumeLock)
        {
            return ResumeEntries.TryGetValue((function, -1), out var e) || ResumeEntries.TryGetValue((function, safePoint), out e)
                ? e
                : throw new Runtime.FrameMismatchException($"no resume code for function {function} at safe point {safePoint}");
        }
    }

    /// <summary>Size of the IL of a defined function's ordinary code (0 if the runtime cannot tell); read once, then remembered.</summary>
    internal int IlSize(int function)
    {
        var size = Volatile.Read(ref ilSizes[function]);
        if (size == 0)
        {
            size = Layout.Methods[function]?.GetMethodBody()?.GetILAsByteArray()?.Length ?? 0;
            Volatile.Write(ref ilSizes[function], size);
        }
        return size;
    }

    /// <summary>
    /// JIT-compiles the ordinary code of the given functions now rather than at their first call. Imports and
    /// out-of-range indices are skipped; each function is prepared once.
    /// </summary>
    /// <returns>How many functions were compiled by this call.</returns>
    public int Prepare(IEnumerable<int> functions, CancellationToken cancellationToken = default)
    {
        var count = 0;
        foreach (var f in functions)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (f < Module.ImportedFunctionCount || f >= Module.FunctionCount) continue;
            lock (prepareLock)
            {
                if (prepared[f]) continue;
                System.Runtime.CompilerServices.RuntimeHelpers.PrepareMethod(Layout.Methods[f]!.MethodHandle);
                prepared[f] = true;
            }
            count++;
        }
        return count;
    }

    /// <summary>
    /// JIT-compiles the unwind helpers now: the static <c>save_…</c> methods that safe points share by the shape of
    /// the values they save (<see cref="SaveShapes"/>). A freeze calls one per frame on the stack, and each is
    /// otherwise compiled at its first call — inside the downtime of the instance's first migration (6 of them in a
    /// JIT listing of kvstore's source during a post-copy switch-over). Cheap: a few dozen small methods, each compiled
    /// once per process whoever asks. Returns how many there are.
    /// </summary>
    public int PrepareUnwind()
    {
        var count = 0;
        foreach (var m in InstanceType.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
        {
            if (!m.Name.StartsWith(SaveShapes.NamePrefix, StringComparison.Ordinal)) continue;
            System.Runtime.CompilerServices.RuntimeHelpers.PrepareMethod(m.MethodHandle);
            count++;
        }
        return count;
    }

    /// <summary>The module's defined functions, largest body first (the order a time-bounded warm-up takes them in).</summary>
    internal int[] LargestFirst()
    {
        var order = new int[Module.FunctionCount - Module.ImportedFunctionCount];
        var sizes = new int[order.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = Module.ImportedFunctionCount + i;
            sizes[i] = -Module.Bodies[i].Code.Length;
        }
        Array.Sort(sizes, order);
        return order;
    }

    public Module Module { get; }
    internal ModuleLayout Layout { get; }
    public CompileOptions Options => Layout.Options;
    public Type InstanceType => Layout.InstanceType;
    /// <summary>Entry point of each defined function (calling convention of <see cref="FuncRef"/>); 0 for imports.</summary>
    public IReadOnlyList<nint> FunctionPointers { get; }
    public TimeSpan CompileTime { get; }

    /// <summary>The WebAssembly function a compiled method belongs to, or -1 (for backtraces).</summary>
    public int FunctionIndexOf(MethodBase method)
    {
        if (method.DeclaringType != InstanceType && method.DeclaringType?.Assembly != InstanceType.Assembly) return -1;
        var name = method.Name.AsSpan();
        var hash = name.IndexOf('#');
        if (hash >= 0) name = name[..hash];
        var at = name.LastIndexOf('@');
        return at >= 0 && int.TryParse(name[(at + 1)..], out var i) ? i : -1;
    }
}

/// <summary>Compiles a validated module to IL in a dynamic assembly.</summary>
public static class ModuleCompiler
{
    private static int assemblyCounter;

    public static CompiledModule Compile(Module module, CompileOptions? options = null)
    {
        options ??= CompileOptions.Default;
        var sw = Stopwatch.StartNew();
        var n = Interlocked.Increment(ref assemblyCounter);
        var name = new AssemblyName($"Ferry.Wasm.Generated{n}");
        var assembly = AssemblyBuilder.DefineDynamicAssembly(name, options.Collectible ? AssemblyBuilderAccess.RunAndCollect : AssemblyBuilderAccess.Run);
        var dynModule = assembly.DefineDynamicModule(name.Name!);
        var tb = dynModule.DefineType("WasmInstance", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(InstanceBase));
        tb.DefineDefaultConstructor(MethodAttributes.Public);

        var exportedGlobals = new HashSet<int>();
        foreach (var e in module.Exports)
        {
            if (e.Kind == ExternalKind.Global) exportedGlobals.Add(e.Index);
        }
        var globalFields = new FieldInfo[module.GlobalTypes.Length];
        var globalIsCell = new bool[module.GlobalTypes.Length];
        for (var i = 0; i < module.GlobalTypes.Length; i++)
        {
            // Imported and exported globals are shared with other instances or the host: they live in cells.
            globalIsCell[i] = i < module.ImportedGlobalCount || exportedGlobals.Contains(i);
            var ft = globalIsCell[i] ? typeof(GlobalCell) : ClrTypes.Of(module.GlobalTypes[i].Type);
            globalFields[i] = tb.DefineField($"global{i}", ft, FieldAttributes.Public);
        }
        var importFields = new FieldInfo[module.ImportedFunctionCount];
        for (var i = 0; i < importFields.Length; i++) importFields[i] = tb.DefineField($"import{i}", typeof(FuncRef), FieldAttributes.Public);

        var builders = new MethodBuilder?[module.FunctionCount];
        for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
        {
            var t = module.FunctionType(i);
            var mb = tb.DefineMethod(MethodName(module, i), MethodAttributes.Public | MethodAttributes.Static, ClrTypes.Return(t), ClrTypes.Parameters(t, tb));
            if (options.AggressiveOptimization) mb.SetImplementationFlags(MethodImplAttributes.AggressiveOptimization);
            builders[i] = mb;
        }

        var mayGrow = MemoryGrowthAnalysis.Analyze(module);
        var canUnwind = MemoryGrowthAnalysis.CanUnwind(module);
        var safePoints = new SafePointTable();
        var buildLayout = new ModuleLayout
        {
            MayGrowMemory = mayGrow,
            CanUnwind = canUnwind,
            SafePoints = safePoints,
            Shapes = new SaveShapes(tb, null),
            Tokens = new MemberTokens(dynModule),
            Module = module,
            InstanceType = tb,
            Methods = builders,
            GlobalFields = globalFields,
            GlobalIsCell = globalIsCell,
            ImportFields = importFields,
            Options = options,
        };
        for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
        {
            new FunctionCompiler(buildLayout, i, builders[i]!.GetILGenerator()).Compile();
        }

        var created = tb.CreateType();
        // One pass over the created type's methods: looking each up by name is quadratic in the function count.
        var byName = new Dictionary<string, MethodInfo>(StringComparer.Ordinal);
        foreach (var m in created.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly)) byName[m.Name] = m;
        var methods = new MethodInfo?[module.FunctionCount];
        for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
        {
            methods[i] = byName[builders[i]!.Name];
        }
        var layout = new ModuleLayout
        {
            MayGrowMemory = mayGrow,
            CanUnwind = canUnwind,
            SafePoints = safePoints,
            Module = module,
            InstanceType = created,
            Methods = methods,
            GlobalFields = globalFields.Select(f => created.GetField(f.Name)!).ToArray(),
            GlobalIsCell = globalIsCell,
            ImportFields = importFields.Select(f => created.GetField(f.Name)!).ToArray(),
            Options = options,
        };
        return new CompiledModule(module, layout, sw.Elapsed);
    }

    /// <summary>Method names carry the WebAssembly name (for .NET stack traces) and "@index" (for mapping back).</summary>
    internal static string MethodName(Module module, int index)
    {
        var raw = module.Names.Functions.TryGetValue(index, out var n) ? n : $"f{index}";
        var sb = new StringBuilder(raw.Length + 8);
        foreach (var c in raw.Length > 200 ? raw[..200] : raw) sb.Append(char.IsControl(c) ? '?' : c);
        sb.Append('@').Append(index);
        return sb.ToString();
    }
}
