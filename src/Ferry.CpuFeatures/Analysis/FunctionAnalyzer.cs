using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Decodes one function and condenses it into a <see cref="FunctionSummary"/>: the feature-test data-flow
/// runs only for functions that contain a feature source (or are IFUNC resolvers), so ordinary code pays for
/// decoding alone.
/// </summary>
internal sealed class FunctionAnalyzer
{
    private readonly BinaryContext _context;
    private readonly FeatureVariables _variables;
    private readonly FunctionDecoder _decoder;
    private readonly FeatureTaint _taint;
    private bool[] _ungated = new bool[64];
    private bool[] _afterSource = new bool[64];
    private readonly Queue<int> _queue = new();
    private readonly List<CallEdge> _edges = [];

    public FunctionAnalyzer(BinaryContext context, FeatureVariables variables)
    {
        _context = context;
        _variables = variables;
        _decoder = new FunctionDecoder(context, variables);
        _taint = new FeatureTaint(_decoder, context, variables);
    }

    private const int MaxGuardedRegion = 4096;
    private readonly List<(ulong Address, int Size)> _stores = [];
    private int[] _regionStamp = new int[64];
    private int _stamp;
    private readonly Iced.Intel.Instruction[] _buffer = new Iced.Intel.Instruction[1024];

    /// <summary>
    /// Feature variables found by the last <see cref="Analyze"/>: data a CPUID-derived value was stored to,
    /// and data written under a feature test (`if (!cpu_has_rtm) elision = 0;`).
    /// </summary>
    public IReadOnlyList<(ulong Address, int Size)> LastStores => _stores;

    public FunctionSummary Analyze(ulong entry, bool isResolver)
    {
        var g = _decoder.Decode(entry, _context.SizeOf(entry));
        int n = g.RunCount;
        if (_ungated.Length < n)
        {
            _ungated = new bool[Math.Max(n, _ungated.Length * 2)];
            _afterSource = new bool[_ungated.Length];
        }
        bool hasSource = false;
        for (int r = 0; r < n; r++)
        {
            hasSource |= g.Runs[r].HasSource;
        }
        _taint.Stores.Clear();
        var summary = new FunctionSummary
        {
            Entry = entry,
            TestsFeatures = hasSource || isResolver,
            DataReads = g.ReadsOverflow ? null : g.DataReads.Count == 0 ? [] : [.. g.DataReads],
            Instructions = g.Instructions,
            Runs = n,
            Truncated = g.Truncated,
            Implausible = g.Implausible,
        };

        bool anyTest = hasSource && n > 0 && _taint.Analyze(g);
        _stores.Clear();
        _stores.AddRange(_taint.Stores);
        int[]? ipdom = null;
        if (anyTest)
        {
            ipdom = MarkUngated(g, _taint.Tests);
            CollectGuardedStores(g, _taint.Tests, ipdom ?? PostDominators.Compute(g));
        }
        else
        {
            Array.Fill(_ungated, true, 0, n);
        }
        summary.ReturnsFeatures = hasSource && _taint.ReturnsFeatures;
        MarkAfterSource(g, hasSource);

        var ungated = FeatureSet.Empty;
        var gated = FeatureSet.Empty;
        bool returns = false;
        _edges.Clear();
        for (int r = 0; r < n; r++)
        {
            ref var run = ref g.Runs[r];
            if (_ungated[r])
            {
                ungated |= run.Features;
            }
            else
            {
                gated |= run.Features;
            }
            returns |= run.EndKind is RunEnd.Return or RunEnd.Tail || (run.EndKind == RunEnd.IndirectJump && run.SuccessorCount == 0);
            var test = anyTest ? _taint.Tests[r] : BranchTest.NotATest;
            foreach (var raw in g.EdgesOf(r))
            {
                bool afterSource = _afterSource[r] || (run.HasSource && raw.At > run.SourceAt);
                bool edgeGated = !_ungated[r]
                    || (raw.TakenSide && test is BranchTest.TakenWhenPresent or BranchTest.Unknown)
                    || (raw.Kind is EdgeKind.AddressTaken or EdgeKind.DataRef && (isResolver || afterSource));
                returns |= raw.Kind == EdgeKind.Tail || (raw.Kind == EdgeKind.Import && run.EndKind == RunEnd.Tail);
                _edges.Add(new CallEdge(raw.Target, raw.Kind, edgeGated, raw.Import));
            }
        }
        // RTM (XBEGIN/XABORT/XEND/XTEST) is treated as gated wherever it occurs: microcode disabled TSX on most
        // CPUs that had it, so no program can run it unchecked, and glibc selects its lock-elision paths
        // through the mutex's kind field, a heap data path this analysis does not follow.
        var rtm = FeatureSet.Of(CpuFeature.Rtm);
        gated |= ungated & rtm;
        ungated -= rtm;
        summary.Ungated = ungated;
        summary.Gated = gated - ungated;
        summary.Edges = [.. _edges];
        summary.NeverReturns = !returns && !g.Truncated && n > 0;

        if (anyTest)
        {
            var examples = new List<FeatureExample>(g.Examples.Count);
            foreach (var (feature, address, run) in g.Examples)
            {
                examples.Add(new FeatureExample(feature, address, !_ungated[run] || feature == CpuFeature.Rtm));
            }
            AddUngatedExamples(g, examples, ungated);
            summary.Examples = [.. examples];
        }
        else if (g.Examples.Count > 0)
        {
            var examples = new FeatureExample[g.Examples.Count];
            for (int i = 0; i < examples.Length; i++)
            {
                var (feature, address, _) = g.Examples[i];
                examples[i] = new FeatureExample(feature, address, feature == CpuFeature.Rtm);
            }
            summary.Examples = examples;
        }
        return summary;
    }

    /// <summary>
    /// Runs reachable from the entry without taking the "feature present" side of a test (or either side of an
    /// undirected test, which instead jumps to the test's post-dominator, where both sides meet again).
    /// </summary>
    private int[]? MarkUngated(FunctionGraph g, BranchTest[] tests)
    {
        int n = g.RunCount;
        Array.Clear(_ungated, 0, n);
        int[]? ipdom = null;
        _queue.Clear();
        _ungated[0] = true;
        _queue.Enqueue(0);
        while (_queue.Count > 0)
        {
            int r = _queue.Dequeue();
            var test = tests[r];
            var successors = g.SuccessorsOf(r);
            for (int k = 0; k < successors.Length; k++)
            {
                bool gatedSide = test switch
                {
                    BranchTest.TakenWhenPresent => k == 0,
                    BranchTest.TakenWhenAbsent => k == 1,
                    BranchTest.Unknown => true,
                    _ => false,
                };
                Visit(successors[k], gatedSide);
            }
            if (test == BranchTest.Unknown)
            {
                ipdom ??= PostDominators.Compute(g);
                Visit(ipdom[r], false);
            }
        }

        return ipdom;

        void Visit(int successor, bool gatedSide)
        {
            if (successor >= 0 && !gatedSide && !_ungated[successor])
            {
                _ungated[successor] = true;
                _queue.Enqueue(successor);
            }
        }
    }

    /// <summary>
    /// RIP-relative stores in runs controlled by a directed feature test (between the test and its immediate
    /// post-dominator): the stored data then records the test's outcome, so loads of it are feature tests too.
    /// </summary>
    private void CollectGuardedStores(FunctionGraph g, BranchTest[] tests, int[] ipdom)
    {
        int n = g.RunCount;
        if (_regionStamp.Length < n)
        {
            _regionStamp = new int[Math.Max(n, _regionStamp.Length * 2)];
        }
        var region = new Stack<int>();
        for (int b = 0; b < n; b++)
        {
            if (tests[b] is not (BranchTest.TakenWhenPresent or BranchTest.TakenWhenAbsent))
            {
                continue;
            }
            if (++_stamp == int.MaxValue)
            {
                Array.Clear(_regionStamp);
                _stamp = 1;
            }
            int visited = 0;
            foreach (int s in g.SuccessorsOf(b))
            {
                if (s >= 0 && s != ipdom[b] && _regionStamp[s] != _stamp)
                {
                    _regionStamp[s] = _stamp;
                    region.Push(s);
                }
            }
            while (region.Count > 0 && visited++ < MaxGuardedRegion)
            {
                int r = region.Pop();
                int count = _decoder.Redecode(in g.Runs[r], _buffer);
                for (int i = Math.Max(0, count - _buffer.Length); i < count; i++)
                {
                    ref var ins = ref _buffer[i % _buffer.Length];
                    if (ins.Op0Kind == Iced.Intel.OpKind.Memory && ins.IsIPRelativeMemoryOperand && !_context.Code.Contains(ins.IPRelativeMemoryAddress)
                        && ins.Mnemonic is Iced.Intel.Mnemonic.Mov or Iced.Intel.Mnemonic.Or or Iced.Intel.Mnemonic.And)
                    {
                        _stores.Add((ins.IPRelativeMemoryAddress, (int)Math.Max(1u, (uint)Iced.Intel.MemorySizeExtensions.GetSize(ins.MemorySize))));
                    }
                }
                foreach (int s in g.SuccessorsOf(r))
                {
                    if (s >= 0 && s != ipdom[b] && _regionStamp[s] != _stamp)
                    {
                        _regionStamp[s] = _stamp;
                        region.Push(s);
                    }
                }
            }
            region.Clear();
        }
    }

    /// <summary>Runs at or after a feature source: code addresses taken there are candidate implementations.</summary>
    private void MarkAfterSource(FunctionGraph g, bool hasSource)
    {
        int n = g.RunCount;
        Array.Clear(_afterSource, 0, n);
        if (!hasSource)
        {
            return;
        }
        // Successors of source runs onwards; within a source run, only what follows the source counts.
        _queue.Clear();
        for (int r = 0; r < n; r++)
        {
            if (g.Runs[r].HasSource)
            {
                _queue.Enqueue(r);
            }
        }
        while (_queue.Count > 0)
        {
            foreach (int s in g.SuccessorsOf(_queue.Dequeue()))
            {
                if (s >= 0 && !_afterSource[s])
                {
                    _afterSource[s] = true;
                    _queue.Enqueue(s);
                }
            }
        }
    }

    /// <summary>
    /// The descent records only a feature's first occurrence; when that one is gated but the feature also
    /// occurs unconditionally, find an ungated occurrence so the report's example is honest.
    /// </summary>
    private void AddUngatedExamples(FunctionGraph g, List<FeatureExample> examples, FeatureSet ungated)
    {
        var covered = FeatureSet.Empty;
        foreach (var e in examples)
        {
            if (!e.Gated)
            {
                covered |= FeatureSet.Of(e.Feature);
            }
        }
        var missing = ungated - covered - CpuFeatureInfo.Baseline;
        var buffer = new Iced.Intel.Instruction[256];
        for (int r = 0; r < g.RunCount && !missing.IsEmpty; r++)
        {
            if (!_ungated[r] || !g.Runs[r].Features.Overlaps(missing))
            {
                continue;
            }
            int count = _decoder.Redecode(in g.Runs[r], buffer);
            for (int i = 0; i < Math.Min(count, buffer.Length); i++)
            {
                var found = IcedFeatureMap.For(buffer[i].Code) & missing;
                while (!found.IsEmpty)
                {
                    var feature = found.First();
                    examples.Add(new FeatureExample(feature, buffer[i].IP, false));
                    found -= FeatureSet.Of(feature);
                    missing -= FeatureSet.Of(feature);
                }
            }
        }
    }
}
