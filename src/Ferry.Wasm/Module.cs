using System.Collections.Immutable;

namespace Ferry.Wasm;

/// <summary>A function signature. Instances are compared structurally.</summary>
public sealed class FuncType : IEquatable<FuncType>
{
    public FuncType(ValueType[] parameters, ValueType[] results)
    {
        Parameters = parameters;
        Results = results;
    }

    public ValueType[] Parameters { get; }
    public ValueType[] Results { get; }

    public bool Equals(FuncType? other) =>
        other is not null && Parameters.AsSpan().SequenceEqual(other.Parameters) && Results.AsSpan().SequenceEqual(other.Results);

    public override bool Equals(object? obj) => Equals(obj as FuncType);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var p in Parameters) h.Add(p);
        h.Add(0xFF);
        foreach (var r in Results) h.Add(r);
        return h.ToHashCode();
    }

    public override string ToString() =>
        $"[{string.Join(' ', Parameters.Select(p => p.Name()))}] -> [{string.Join(' ', Results.Select(r => r.Name()))}]";
}

/// <summary>Size limits of a memory (in 64 KiB pages) or table (in elements).</summary>
public readonly record struct Limits(ulong Min, ulong? Max);

public readonly record struct MemoryType(Limits Limits, bool Is64)
{
    public const ulong PageSize = 65536;
    /// <summary>Largest page count a 32-bit memory may declare (4 GiB).</summary>
    public const ulong MaxPages32 = 65536;
    /// <summary>Largest page count a 64-bit memory may declare (2^48 pages = 2^64 bytes).</summary>
    public const ulong MaxPages64 = 1UL << 48;
}

public readonly record struct TableType(ValueType ElementType, Limits Limits);

public readonly record struct GlobalType(ValueType Type, bool Mutable);

public enum ExternalKind : byte
{
    Function = 0,
    Table = 1,
    Memory = 2,
    Global = 3,
}

public sealed record Import(string Module, string Name, ExternalKind Kind, int FunctionTypeIndex, TableType Table, MemoryType Memory, GlobalType Global);

public sealed record Export(string Name, ExternalKind Kind, int Index);

/// <summary>
/// A constant expression (global initialisers, segment offsets, element items), kept as raw bytes plus its
/// offset so it can be validated and evaluated later. Valid constant expressions are a single instruction
/// (t.const, ref.null, ref.func, global.get) followed by end.
/// </summary>
public readonly record struct ConstExpr(int Offset, ReadOnlyMemory<byte> Code);

public sealed record Global(GlobalType Type, ConstExpr Init);

public enum SegmentMode : byte
{
    Active,
    Passive,
    Declarative,
}

/// <summary>An element segment item: a function index (the compact encoding) or a constant expression.</summary>
public readonly record struct ElementItem(int FunctionIndex, ConstExpr Expr)
{
    public bool IsFunctionIndex => FunctionIndex >= 0;
}

public sealed record ElementSegment(SegmentMode Mode, int TableIndex, ConstExpr Offset, ValueType ElementType, ImmutableArray<ElementItem> Items);

public sealed record DataSegment(SegmentMode Mode, int MemoryIndex, ConstExpr Offset, ReadOnlyMemory<byte> Bytes);

/// <summary>A run of locals of one type, as the binary format groups them.</summary>
public readonly record struct LocalGroup(uint Count, ValueType Type);

/// <summary>A function body: its declared locals and the code bytes (up to and including the final end).</summary>
public sealed class FunctionBody
{
    public FunctionBody(ImmutableArray<LocalGroup> locals, int localCount, int codeOffset, ReadOnlyMemory<byte> code)
    {
        Locals = locals;
        LocalCount = localCount;
        CodeOffset = codeOffset;
        Code = code;
    }

    public ImmutableArray<LocalGroup> Locals { get; }
    /// <summary>Number of declared locals, not counting parameters.</summary>
    public int LocalCount { get; }
    /// <summary>Offset of the first instruction in the module file.</summary>
    public int CodeOffset { get; }
    public ReadOnlyMemory<byte> Code { get; }
}

/// <summary>
/// A decoded module: everything the binary says, in index spaces that include imports first, as the spec defines.
/// Immutable after decoding; shared by validation, compilation and every instance.
/// </summary>
public sealed class Module
{
    public required ImmutableArray<FuncType> Types { get; init; }
    public required ImmutableArray<Import> Imports { get; init; }
    /// <summary>Type index of every function, imports first.</summary>
    public required ImmutableArray<int> FunctionTypeIndices { get; init; }
    public required ImmutableArray<TableType> Tables { get; init; }
    public required ImmutableArray<MemoryType> Memories { get; init; }
    public required ImmutableArray<GlobalType> GlobalTypes { get; init; }
    /// <summary>Module-defined globals (after the imported ones in the global index space).</summary>
    public required ImmutableArray<Global> Globals { get; init; }
    public required ImmutableArray<Export> Exports { get; init; }
    public required int? StartFunction { get; init; }
    public required ImmutableArray<ElementSegment> Elements { get; init; }
    public required ImmutableArray<DataSegment> Data { get; init; }
    public required int? DataCount { get; init; }
    public required ImmutableArray<FunctionBody> Bodies { get; init; }
    public required NameSection Names { get; init; }
    /// <summary>The module bytes; the identity of a module for snapshots is the SHA-256 of these.</summary>
    public required ReadOnlyMemory<byte> Bytes { get; init; }

    public int ImportedFunctionCount { get; init; }
    public int ImportedTableCount { get; init; }
    public int ImportedMemoryCount { get; init; }
    public int ImportedGlobalCount { get; init; }

    public int FunctionCount => FunctionTypeIndices.Length;
    public FuncType FunctionType(int functionIndex) => Types[FunctionTypeIndices[functionIndex]];

    /// <summary>A readable name for function <paramref name="index"/>: the name section's, an export's, or $f{index}.</summary>
    public string FunctionName(int index)
    {
        if (Names.Functions.TryGetValue(index, out var n)) return n;
        foreach (var e in Exports)
        {
            if (e.Kind == ExternalKind.Function && e.Index == index) return e.Name;
        }
        if (index < ImportedFunctionCount)
        {
            var seen = 0;
            foreach (var i in Imports)
            {
                if (i.Kind != ExternalKind.Function) continue;
                if (seen++ == index) return $"{i.Module}.{i.Name}";
            }
        }
        return $"$f{index}";
    }
}

/// <summary>The "name" custom section (function names only are used; others are skipped).</summary>
public sealed class NameSection
{
    public static readonly NameSection Empty = new(null, ImmutableDictionary<int, string>.Empty);

    public NameSection(string? moduleName, ImmutableDictionary<int, string> functions)
    {
        ModuleName = moduleName;
        Functions = functions;
    }

    public string? ModuleName { get; }
    public ImmutableDictionary<int, string> Functions { get; }
}
