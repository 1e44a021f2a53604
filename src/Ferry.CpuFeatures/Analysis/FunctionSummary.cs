using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Analysis;

internal enum EdgeKind : byte
{
    /// <summary>A direct call.</summary>
    Call,
    /// <summary>A jump that leaves the function (tail call, or running into the next function's entry).</summary>
    Tail,
    /// <summary>A code address loaded into a register or stored (function pointer): it may be called later.</summary>
    AddressTaken,
    /// <summary>A call or jump through the GOT to another module's symbol.</summary>
    Import,
    /// <summary>The address of a data object (LEA): code pointers stored in that object become reachable.</summary>
    DataRef,
}

/// <summary>An edge of the call graph, from some run of a function. Gated edges leave a feature-tested run.</summary>
internal readonly record struct CallEdge(ulong Target, EdgeKind Kind, bool Gated, string? Import);

/// <summary>The first instruction in a function that needs a feature, split by whether that run is feature-tested.</summary>
internal readonly record struct FeatureExample(CpuFeature Feature, ulong Address, bool Gated);

/// <summary>
/// What one function contributes to the file's call graph, after its own feature tests are accounted for:
/// features of runs reachable from its entry without passing a test (<see cref="Ungated"/>), features of
/// runs behind a test (<see cref="Gated"/>), and its outgoing edges.
/// </summary>
internal sealed class FunctionSummary
{
    public required ulong Entry { get; init; }
    public FeatureSet Ungated { get; set; }
    public FeatureSet Gated { get; set; }
    public CallEdge[] Edges { get; set; } = [];
    public FeatureExample[] Examples { get; set; } = [];

    /// <summary>Contains a feature source (CPUID, XGETBV, a feature-data load, a call to a feature accessor).</summary>
    public bool TestsFeatures { get; set; }

    /// <summary>Returns a value derived from CPUID or feature data in RAX (like glibc's __get_cpu_features).</summary>
    public bool ReturnsFeatures { get; set; }

    /// <summary>No path reaches a return or leaves the function: calls to it do not fall through.</summary>
    public bool NeverReturns { get; set; }

    /// <summary>Writable data it reads RIP-relatively; null when there were too many to keep (then assume any).</summary>
    public ulong[]? DataReads { get; set; }

    public bool MayRead(FeatureVariables variables, int since)
    {
        if (DataReads is null)
        {
            return true;
        }
        foreach (var address in DataReads)
        {
            if (variables.ContainsAddedSince(address, since))
            {
                return true;
            }
        }
        return false;
    }

    public int Instructions { get; set; }
    public int Runs { get; set; }

    /// <summary>Decoding met an invalid or privileged instruction: if only a data pointer led here, it is data.</summary>
    public bool Implausible { get; set; }

    /// <summary>A size or run limit stopped the descent; the summary covers only what was decoded.</summary>
    public bool Truncated { get; set; }
}
