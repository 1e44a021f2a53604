using System.Reflection;

namespace Ferry.Wasm.Compilation;

/// <summary>Options that change the code the compiler emits.</summary>
public sealed record CompileOptions
{
    public static readonly CompileOptions Default = new();

    /// <summary>Compiled stores mark the 4 KiB pages they write in the instance's dirty-page map (compiler-based tracking).</summary>
    public bool DirtyTracking { get; init; }

    /// <summary>
    /// Compiled loads and stores test the instance's present-page map and fetch missing pages first
    /// (compiler-based post-copy on a migration's destination).
    /// </summary>
    public bool PresenceChecks { get; init; }

    /// <summary>
    /// Make every compiled method fully interruptible (a never-taken backward branch at entry), so a thread blocked
    /// in a kernel page fault (userfaultfd post-copy) can still be suspended for a garbage collection.
    /// </summary>
    public bool FullyInterruptible { get; init; }

    /// <summary>Emit safe points (function entry, loop headers, after calls) so instances can be frozen. On by default.</summary>
    public bool SafePoints { get; init; } = true;

    /// <summary>
    /// Mark compiled methods AggressiveOptimization: fully optimised at first call, no tiering. Off by default:
    /// with tiering, dynamic PGO learns that the safe points' unwind paths are never taken and lays the code
    /// out accordingly (measured: nbody 35% slower with safe points under AggressiveOptimization, 3–8% with
    /// tiering; see docs/benchmarks.md).
    /// </summary>
    public bool AggressiveOptimization { get; init; }

    /// <summary>Let the runtime unload compiled code when the module is no longer referenced.</summary>
    public bool Collectible { get; init; }
}

/// <summary>
/// Where everything of a module lives in the generated code: the instance class, its fields, the method of
/// each function. Built while compiling (with builders) and again over the created type (for resume compiles).
/// </summary>
internal sealed class ModuleLayout
{
    public required Module Module { get; init; }
    public required Type InstanceType { get; init; }
    /// <summary>The compiled method of every defined function; null for imports.</summary>
    public required MethodInfo?[] Methods { get; init; }
    /// <summary>Field of every global: a typed value field, or a <see cref="Runtime.GlobalCell"/> field when shared.</summary>
    public required FieldInfo[] GlobalFields { get; init; }
    public required bool[] GlobalIsCell { get; init; }
    /// <summary>Field holding the FuncRef of every imported function.</summary>
    public required FieldInfo[] ImportFields { get; init; }
    public required CompileOptions Options { get; init; }
    /// <summary>Per function: may calling it grow memory? (See <see cref="MemoryGrowthAnalysis"/>.) Imports: see <see cref="MemoryShared"/>.</summary>
    public required bool[] MayGrowMemory { get; init; }
    /// <summary>Per function: can it be frozen inside? Functions that cannot have no safe points.</summary>
    public required bool[] CanUnwind { get; init; }
    /// <summary>Layouts of all safe points (shared by the normal and the resume compiles).</summary>
    public required SafePointTable SafePoints { get; init; }
    /// <summary>Where shared save methods are defined (null once the module's type is created).</summary>
    public SaveShapes? Shapes { get; init; }
    /// <summary>Token cache of the module being emitted (null once the module's type is created).</summary>
    public MemberTokens? Tokens { get; init; }

    public bool HasMemory => Module.Memories.Length > 0;

    /// <summary>Imported or exported memory: code elsewhere (another module, the host) may grow it during an import call.</summary>
    public bool MemoryShared => HasMemory && (Module.ImportedMemoryCount > 0 || Module.Exports.Any(e => e.Kind == ExternalKind.Memory));
    public bool Memory64 => HasMemory && Module.Memories[0].Is64;
}
