using Ferry.Wasm.Compilation;

namespace Ferry.Wasm.Runtime;

/// <summary>Limits applied when an instance is created.</summary>
public sealed record InstanceOptions
{
    public static readonly InstanceOptions Default = new();

    /// <summary>Upper bound on linear memory size in bytes (--mem-max); growth beyond it fails like a declared maximum.</summary>
    public ulong? MaxMemoryBytes { get; init; }

    /// <summary>Address space reserved for a memory whose type allows more (memory64 without a maximum).</summary>
    public ulong ReserveCapBytes { get; init; } = 16UL << 30;

    /// <summary>Run the module's start function during instantiation (off when restoring a snapshot).</summary>
    public bool RunStart { get; init; } = true;

    /// <summary>Apply active data and element segments (off when restoring a snapshot, whose memory already has them).</summary>
    public bool InitializeSegments { get; init; } = true;

    /// <summary>
    /// Use this memory as the module's own memory 0 instead of allocating one (a migration destination fills a
    /// memory with pages before the instance exists). Must match the module's memory type.
    /// </summary>
    public LinearMemory? AdoptMemory { get; init; }

    /// <summary>
    /// Use this (all-zero) map as the absent-page map of code compiled with presence checks instead of mapping a fresh
    /// one; it must cover the memory's whole reservation. A post-copy destination prepares it ahead of the freeze.
    /// The instance takes ownership.
    /// </summary>
    public PageMap? AdoptAbsentMap { get; init; }
}

/// <summary>An instantiated module: its state, its exports, and calls into it.</summary>
public sealed class Instance
{
    private readonly Dictionary<string, object> exports = new(StringComparer.Ordinal);

    private Instance(CompiledModule compiled, InstanceBase state)
    {
        Compiled = compiled;
        State = state;
        state.Owner = this;
    }

    public CompiledModule Compiled { get; }
    public Module Module => Compiled.Module;
    public InstanceBase State { get; }
    public LinearMemory? Memory => State.Memory0;
    public IReadOnlyDictionary<string, object> Exports => exports;

    public FuncRef GetFunction(string name) =>
        exports.TryGetValue(name, out var v) && v is FuncRef f ? f : throw new KeyNotFoundException($"no exported function \"{name}\"");

    public WasmValue[] Invoke(string name, params WasmValue[] args) => Invoke(GetFunction(name), args);

    public static WasmValue[] Invoke(FuncRef function, params WasmValue[] args) => Invokers.Invoke(function, args);

    /// <summary>The current value of global <paramref name="index"/> (any global, exported or not).</summary>
    public WasmValue GetGlobal(int index)
    {
        var layout = Compiled.Layout;
        var f = layout.GlobalFields[index];
        var t = Module.GlobalTypes[index].Type;
        if (layout.GlobalIsCell[index]) return ((GlobalCell)f.GetValue(State)!).Value;
        return Box(t, f.GetValue(State));
    }

    public void SetGlobal(int index, WasmValue value)
    {
        var layout = Compiled.Layout;
        var f = layout.GlobalFields[index];
        if (layout.GlobalIsCell[index])
        {
            ((GlobalCell)f.GetValue(State)!).Value = value;
            return;
        }
        f.SetValue(State, Unbox(value));
    }

    private static WasmValue Box(ValueType t, object? v) => t switch
    {
        ValueType.I32 => WasmValue.FromI32((int)v!),
        ValueType.I64 => WasmValue.FromI64((long)v!),
        ValueType.F32 => WasmValue.FromF32((float)v!),
        ValueType.F64 => WasmValue.FromF64((double)v!),
        ValueType.V128 => WasmValue.FromV128((System.Runtime.Intrinsics.Vector128<byte>)v!),
        _ => WasmValue.FromRef(t, v),
    };

    private static object? Unbox(WasmValue v) => v.Type switch
    {
        ValueType.I32 => v.I32,
        ValueType.I64 => v.I64,
        ValueType.F32 => v.F32,
        ValueType.F64 => v.F64,
        ValueType.V128 => v.V128,
        _ => v.Ref,
    };

    /// <summary>Links, allocates and initialises an instance, then runs its start function.</summary>
    public static Instance Instantiate(CompiledModule compiled, IImportResolver? imports = null, InstanceOptions? options = null)
    {
        options ??= InstanceOptions.Default;
        var module = compiled.Module;
        var layout = compiled.Layout;
        var resolved = ResolveImports(module, imports);

        var state = (InstanceBase)Activator.CreateInstance(compiled.InstanceType)!;
        var instance = new Instance(compiled, state);

        // Functions: imports as given, then the module's own.
        var functions = new FuncRef[module.FunctionCount];
        var fi = 0;
        var tables = new List<Table>();
        LinearMemory? memory = null;
        var gi = 0;
        foreach (var (import, value) in resolved)
        {
            switch (import.Kind)
            {
                case ExternalKind.Function:
                    var fref = value as FuncRef ?? HostStubs.Create((HostFunction)value);
                    functions[fi] = fref;
                    layout.ImportFields[fi].SetValue(state, fref);
                    fi++;
                    break;
                case ExternalKind.Table:
                    tables.Add((Table)value);
                    break;
                case ExternalKind.Memory:
                    memory = (LinearMemory)value;
                    break;
                case ExternalKind.Global:
                    layout.GlobalFields[gi++].SetValue(state, value);
                    break;
            }
        }
        for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
        {
            functions[i] = new FuncRef(compiled.FunctionPointers[i], state, module.FunctionType(i), instance, i);
        }
        state.Functions = functions;

        for (var i = module.ImportedTableCount; i < module.Tables.Length; i++)
        {
            var t = module.Tables[i];
            tables.Add(new Table(t.ElementType, (uint)t.Limits.Min, t.Limits.Max is { } mx ? (uint)mx : null));
        }
        state.Tables = [.. tables];
        state.Table0 = tables.Count > 0 ? tables[0] : null;

        if (memory is null && module.Memories.Length > 0 && options.AdoptMemory is { } adopted)
        {
            var mt = module.Memories[0];
            if (adopted.Is64 != mt.Is64 || adopted.Pages < mt.Limits.Min || (mt.Limits.Max is { } declared && adopted.Pages > declared))
            {
                throw new InstantiationException("the memory handed to the instance does not match the module's memory type");
            }
            memory = adopted;
        }
        if (memory is null && module.Memories.Length > 0)
        {
            var mt = module.Memories[0];
            ulong? max = mt.Limits.Max;
            if (options.MaxMemoryBytes is { } cap)
            {
                var capPages = cap / MemoryType.PageSize;
                if (mt.Limits.Min > capPages)
                {
                    throw new InstantiationException($"module needs {mt.Limits.Min} pages of memory at start, more than the limit of {capPages} pages");
                }
                max = Math.Min(max ?? ulong.MaxValue, capPages);
            }
            memory = new LinearMemory(mt.Limits.Min, max, mt.Is64, options.ReserveCapBytes);
        }
        state.Memory0 = memory;
        InstallPageMaps(compiled, state, memory, options.AdoptAbsentMap);

        // Globals defined by the module, in order (initialisers may read imported globals only).
        WasmValue ReadGlobal(int index) => instance.GetGlobal(index);
        FuncRef RefFunc(int index) => functions[index];
        for (var i = 0; i < module.Globals.Length; i++)
        {
            var index = module.ImportedGlobalCount + i;
            var value = ConstEval.Evaluate(module.Globals[i].Init, ReadGlobal, RefFunc);
            if (layout.GlobalIsCell[index])
            {
                var cell = new GlobalCell(module.Globals[i].Type) { Value = value };
                layout.GlobalFields[index].SetValue(state, cell);
            }
            else
            {
                layout.GlobalFields[index].SetValue(state, Unbox(value));
            }
        }

        // Segments as runtime values.
        state.ElementSegments = new object?[]?[module.Elements.Length];
        for (var i = 0; i < module.Elements.Length; i++)
        {
            var seg = module.Elements[i];
            var items = new object?[seg.Items.Length];
            for (var k = 0; k < items.Length; k++)
            {
                var item = seg.Items[k];
                items[k] = item.IsFunctionIndex ? functions[item.FunctionIndex] : ConstEval.Evaluate(item.Expr, ReadGlobal, RefFunc).Ref;
            }
            state.ElementSegments[i] = seg.Mode == SegmentMode.Declarative ? null : items;
        }
        state.DataSegments = new byte[]?[module.Data.Length];
        for (var i = 0; i < module.Data.Length; i++) state.DataSegments[i] = module.Data[i].Bytes.ToArray();

        foreach (var e in module.Exports)
        {
            instance.exports[e.Name] = e.Kind switch
            {
                ExternalKind.Function => functions[e.Index],
                ExternalKind.Table => state.Tables[e.Index],
                ExternalKind.Memory => state.Memory0!,
                _ => layout.GlobalFields[e.Index].GetValue(state)!,
            };
        }

        if (options.InitializeSegments)
        {
            // Active segments are applied in order, as table.init/memory.init followed by a drop; a trap here
            // fails instantiation but leaves earlier writes in place (WebAssembly 2.0 semantics).
            for (var i = 0; i < module.Elements.Length; i++)
            {
                var seg = module.Elements[i];
                if (seg.Mode != SegmentMode.Active) continue;
                var offset = ConstEval.Evaluate(seg.Offset, ReadGlobal, RefFunc).I32;
                TableOps.Init(offset, 0, seg.Items.Length, i, seg.TableIndex, state);
                state.ElementSegments[i] = null;
            }
            for (var i = 0; i < module.Data.Length; i++)
            {
                var seg = module.Data[i];
                if (seg.Mode != SegmentMode.Active) continue;
                var offset = ConstEval.Evaluate(seg.Offset, ReadGlobal, RefFunc);
                var dest = module.Memories[0].Is64 ? (ulong)offset.I64 : (uint)offset.I32;
                MemoryOps.Init(dest, 0, (uint)seg.Bytes.Length, i, state);
                state.DataSegments[i] = null;
            }
        }
        else
        {
            for (var i = 0; i < module.Elements.Length; i++)
            {
                if (module.Elements[i].Mode == SegmentMode.Active) state.ElementSegments[i] = null;
            }
            for (var i = 0; i < module.Data.Length; i++)
            {
                if (module.Data[i].Mode == SegmentMode.Active) state.DataSegments[i] = null;
            }
        }

        if (options.RunStart && module.StartFunction is { } start)
        {
            Invokers.Invoke(functions[start], []);
        }
        return instance;
    }

    /// <summary>Code compiled with tracking or presence checks dereferences these maps from its first instruction.</summary>
    private static unsafe void InstallPageMaps(CompiledModule compiled, InstanceBase state, LinearMemory? memory, PageMap? absent)
    {
        if (memory is null) return;
        if (absent is not null && (!compiled.Options.PresenceChecks || absent.Length < (long)(memory.ReservedBytes >> PageMap.PageShift)))
        {
            throw new ArgumentException("the adopted absent-page map must cover the memory's reservation, for code compiled with presence checks", nameof(absent));
        }
        if (compiled.Options.DirtyTracking)
        {
            state.DirtyMap = new PageMap(memory.ReservedBytes);
            state.DirtyPages = state.DirtyMap.Pointer;
        }
        if (compiled.Options.PresenceChecks)
        {
            state.AbsentMap = absent ?? new PageMap(memory.ReservedBytes);
            state.AbsentPages = state.AbsentMap.Pointer;
        }
    }

    private static List<(Import, object)> ResolveImports(Module module, IImportResolver? imports)
    {
        var result = new List<(Import, object)>(module.Imports.Length);
        foreach (var import in module.Imports)
        {
            var value = imports?.Resolve(import.Module, import.Name)
                ?? throw new LinkException($"unknown import \"{import.Module}\" \"{import.Name}\"");
            if (!Matches(module, import, value))
            {
                throw new LinkException($"incompatible import type for \"{import.Module}\" \"{import.Name}\"");
            }
            result.Add((import, value));
        }
        return result;
    }

    private static bool Matches(Module module, Import import, object value)
    {
        static bool LimitsMatch(ulong min, ulong? max, Limits wanted) =>
            min >= wanted.Min && (wanted.Max is not { } wmax || (max is { } m && m <= wmax));

        switch (import.Kind)
        {
            case ExternalKind.Function:
                var want = module.Types[import.FunctionTypeIndex];
                return value switch
                {
                    FuncRef f => f.Type.Equals(want),
                    HostFunction h => h.Type.Equals(want),
                    _ => false,
                };
            case ExternalKind.Table:
                return value is Table t && t.ElementType == import.Table.ElementType && LimitsMatch(t.Size, t.Max, import.Table.Limits);
            case ExternalKind.Memory:
                return value is LinearMemory m && m.Is64 == import.Memory.Is64
                    && LimitsMatch(m.Pages, m.DeclaredMaxPages, import.Memory.Limits);
            default:
                return value is GlobalCell g && g.Type == import.Global;
        }
    }

    /// <summary>
    /// Maps a .NET exception's stack to WebAssembly function names, innermost first. Runs of the same function
    /// (deep recursion) are folded into one line, and the list is capped so a trap never floods the terminal.
    /// </summary>
    public IReadOnlyList<string> Backtrace(Exception e, int maxLines = 64)
    {
        var frames = new System.Diagnostics.StackTrace(e, false).GetFrames();
        var result = new List<string>();
        string? last = null;
        var repeat = 0;
        var total = 0;
        void Flush()
        {
            if (last is null) return;
            result.Add(repeat > 1 ? $"{last} (x{repeat})" : last);
        }
        foreach (var frame in frames)
        {
            var m = frame.GetMethod();
            if (m is null) continue;
            var index = Compiled.FunctionIndexOf(m);
            if (index < 0) continue;
            var line = $"{index}: {Module.FunctionName(index)}";
            total++;
            if (line == last)
            {
                repeat++;
                continue;
            }
            Flush();
            last = line;
            repeat = 1;
            if (result.Count >= maxLines) break;
        }
        if (result.Count < maxLines) Flush();
        else result.Add($"... ({total}+ frames)");
        return result;
    }
}
