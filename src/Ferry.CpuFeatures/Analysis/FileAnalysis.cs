using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>Where a feature is used: the function (symbol, symbol+offset, or sub_ADDRESS) and the instruction.</summary>
public sealed record FeatureLocation(string Function, ulong Address, bool Gated);

/// <summary>How the `.note.gnu.property` ISA level compares with the instructions.</summary>
public sealed record NoteCheck(string Status, string Detail);

/// <summary>Counts that say how much of the file the analysis saw.</summary>
public sealed record AnalysisStats(
    int Functions, int ReachableFunctions, long Instructions, ulong CodeBytes, ulong CoveredBytes, int FeatureTestFunctions, bool Truncated);

/// <summary>The result of analysing one ELF file on its own (its exported functions count as reachable).</summary>
public sealed class FileAnalysis
{
    public required string Path { get; init; }
    public required ElfFileKind Kind { get; init; }

    /// <summary>Non-baseline features reachable from a root without passing a feature test.</summary>
    public required FeatureSet Required { get; init; }

    /// <summary>Baseline (every x86-64 CPU) features in that same reachable code, listed for completeness.</summary>
    public required FeatureSet BaselineUsed { get; init; }

    /// <summary>Features reachable only behind a feature test (and not required).</summary>
    public required FeatureSet Gated { get; init; }

    /// <summary>Features found only in code no root reaches (or that a linear sweep of undecoded bytes found).</summary>
    public required FeatureSet Unreached { get; init; }

    public required IsaLevel Level { get; init; }
    public required IsaLevel? NoteNeeded { get; init; }
    public required IsaLevel? NoteUsed { get; init; }
    public required NoteCheck NoteCheck { get; init; }
    public required IReadOnlyDictionary<CpuFeature, FeatureLocation> Examples { get; init; }
    public required IReadOnlyList<string> Needed { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public required AnalysisStats Stats { get; init; }
    public string? RunPath { get; init; }
    public string? RPath { get; init; }

    /// <summary>PT_INTERP: the dynamic loader an executable names.</summary>
    public string? Interpreter { get; init; }

    /// <summary>The call graph, when the caller asked to keep it for a closure walk.</summary>
    internal FileGraph? Graph { get; private set; }

    internal void SetGraph(FileGraph? graph) => Graph = graph;

    /// <summary>Releases the call graph once the closure has been computed.</summary>
    public void DropGraph() => Graph = null;
}
