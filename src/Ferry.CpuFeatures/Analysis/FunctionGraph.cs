using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>How a run of straight-line instructions ends.</summary>
internal enum RunEnd : byte
{
    Jump,
    /// <summary>A conditional branch: successor 0 is the taken target, successor 1 the fall-through.</summary>
    Branch,
    Return,
    /// <summary>An indirect jump: successors are jump-table targets when a table was recognised.</summary>
    IndirectJump,
    /// <summary>Control leaves the function (tail call, fall into another function's entry, GOT jump).</summary>
    Tail,
    /// <summary>INT3, UD2, HLT, an invalid encoding, a call that never returns, or the end of the code.</summary>
    Stop,
    /// <summary>Runs into the start of a run decoded earlier; successor 0 is that run.</summary>
    FallThrough,
}

/// <summary>A maximal straight-line stretch of instructions (calls do not end a run).</summary>
internal struct Run
{
    public ulong Start;
    /// <summary>The address after the last instruction.</summary>
    public ulong End;
    /// <summary>The address of the last instruction (the branch, for <see cref="RunEnd.Branch"/>).</summary>
    public ulong Last;
    /// <summary>The address of the instruction before <see cref="Last"/> (0 when the run has one instruction).</summary>
    public ulong Penultimate;
    public FeatureSet Features;
    public int SuccessorStart;
    public int SuccessorCount;
    public int EdgeStart;
    public int EdgeCount;
    public int Predecessor;
    public RunEnd EndKind;
    public bool HasSource;
    /// <summary>The first feature source in the run (CPUID, feature-data load, call of a feature accessor).</summary>
    public ulong SourceAt;

    public void MarkSource(ulong at)
    {
        if (!HasSource)
        {
            HasSource = true;
            SourceAt = at;
        }
    }
}

/// <summary>
/// An edge recorded during descent, before gating is known. <see cref="TakenSide"/> marks a conditional
/// tail call: it is gated exactly when its branch's taken side is.
/// </summary>
internal readonly record struct RawEdge(ulong Target, EdgeKind Kind, string? Import, ulong At, bool TakenSide = false);

/// <summary>
/// The control-flow graph of one function as the descent built it; scratch storage reused for every function
/// a thread decodes. Successors are run indices once <see cref="ResolveSuccessors"/> has run.
/// </summary>
internal sealed class FunctionGraph
{
    public Run[] Runs = new Run[64];
    public int RunCount;
    public ulong[] SuccessorAddresses = new ulong[128];
    public int[] Successors = new int[128];
    public int SuccessorCount;
    public RawEdge[] Edges = new RawEdge[64];
    public int EdgeCount;
    public List<(CpuFeature Feature, ulong Address, int Run)> Examples = [];
    public readonly AddressMap RunByStart = new();
    public ulong Entry;
    /// <summary>Distinct writable-data addresses read RIP-relatively (capped; see <see cref="ReadsOverflow"/>).</summary>
    public readonly List<ulong> DataReads = [];
    public bool ReadsOverflow;
    public const int MaxDataReads = 128;
    public int Instructions;
    public bool Truncated;

    /// <summary>Decoding met an invalid encoding, a privileged instruction or the end of the code: likely data.</summary>
    public bool Implausible;

    public void Reset(ulong entry)
    {
        RunCount = 0;
        SuccessorCount = 0;
        EdgeCount = 0;
        Examples.Clear();
        RunByStart.Clear();
        Entry = entry;
        DataReads.Clear();
        ReadsOverflow = false;
        Instructions = 0;
        Truncated = false;
        Implausible = false;
    }

    public int AddRun(ulong start, int predecessor)
    {
        if (RunCount == Runs.Length)
        {
            Array.Resize(ref Runs, Runs.Length * 2);
        }
        Runs[RunCount] = new Run { Start = start, Predecessor = predecessor, SuccessorStart = SuccessorCount, EdgeStart = EdgeCount };
        RunByStart.Set(start, RunCount);
        return RunCount++;
    }

    public void AddSuccessor(ref Run run, ulong target)
    {
        if (SuccessorCount == SuccessorAddresses.Length)
        {
            Array.Resize(ref SuccessorAddresses, SuccessorAddresses.Length * 2);
            Array.Resize(ref Successors, Successors.Length * 2);
        }
        SuccessorAddresses[SuccessorCount++] = target;
        run.SuccessorCount++;
    }

    public void AddEdge(ref Run run, ulong target, EdgeKind kind, ulong at, string? import = null)
    {
        if (EdgeCount == Edges.Length)
        {
            Array.Resize(ref Edges, Edges.Length * 2);
        }
        Edges[EdgeCount++] = new RawEdge(target, kind, import, at);
        run.EdgeCount++;
    }

    public void AddDataRead(ulong address)
    {
        // Loops read the same globals again and again: comparing with the last few catches nearly all repeats.
        int n = DataReads.Count;
        if (ReadsOverflow || (n > 0 && DataReads[n - 1] == address) || (n > 1 && DataReads[n - 2] == address)
            || (n > 2 && DataReads[n - 3] == address) || (n > 3 && DataReads[n - 4] == address))
        {
            return;
        }
        if (DataReads.Count == MaxDataReads)
        {
            ReadsOverflow = true;
            return;
        }
        DataReads.Add(address);
    }

    /// <summary>Turns successor addresses into run indices (-1 where nothing was decoded, e.g. a bad target).</summary>
    public void ResolveSuccessors()
    {
        for (int i = 0; i < SuccessorCount; i++)
        {
            Successors[i] = RunByStart.TryGet(SuccessorAddresses[i], out var index) ? index : -1;
        }
    }

    public ReadOnlySpan<int> SuccessorsOf(int run) => Successors.AsSpan(Runs[run].SuccessorStart, Runs[run].SuccessorCount);

    public ReadOnlySpan<RawEdge> EdgesOf(int run) => Edges.AsSpan(Runs[run].EdgeStart, Runs[run].EdgeCount);
}
