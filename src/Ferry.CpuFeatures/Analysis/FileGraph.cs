using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// The call graph of one file, kept after analysis so a closure can be walked across files: which functions
/// run without being called by name (load roots), which the file exports, and each function's summary.
/// </summary>
internal sealed class FileGraph
{
    public required string Path { get; init; }
    public required FunctionSummary[] Functions { get; init; }
    public required Dictionary<ulong, int> Index { get; init; }

    /// <summary>Functions that decode like data and that nothing calls: excluded from every walk.</summary>
    public required bool[] IsData { get; init; }

    /// <summary>Run whenever the file is loaded or reachable through data: entry point (executables),
    /// init/fini functions, IFUNC resolvers, code addresses stored in data.</summary>
    public required int[] LoadRoots { get; init; }

    /// <summary>Exported function name → function index (the targets of other files' imports).</summary>
    public required Dictionary<string, int> Exports { get; init; }

    public required int[] ExportRoots { get; init; }
    public required SymbolTable Symbols { get; init; }
}

/// <summary>A function reached in some file, and whether only behind a feature test.</summary>
internal readonly record struct Reached(int File, int Function, bool Gated);

/// <summary>
/// Walks call graphs from seeds, across files when imports can be resolved: a function reached without
/// passing a gated edge is "ungated" (its unconditional features are required); one reached only through
/// gated edges is "gated". Ungated work is always drained first, so each function is visited at most twice.
/// </summary>
internal sealed class GraphWalk
{
    private readonly IReadOnlyList<FileGraph> _files;
    private readonly Func<int, string, (int File, int Function)?> _resolveImport;
    private readonly byte[][] _marks;
    private readonly Queue<(int File, int Function)> _ungated = new();
    private readonly Queue<(int File, int Function)> _gated = new();

    private const byte None = 0;
    private const byte GatedMark = 1;
    private const byte UngatedMark = 2;

    /// <param name="resolveImport">Maps (importing file, symbol name) to the defining file and function, or null.</param>
    public GraphWalk(IReadOnlyList<FileGraph> files, Func<int, string, (int File, int Function)?> resolveImport)
    {
        _files = files;
        _resolveImport = resolveImport;
        _marks = [.. files.Select(f => new byte[f.Functions.Length])];
    }

    /// <summary>Import names no file in the walk defines.</summary>
    public SortedSet<string> Unresolved { get; } = new(StringComparer.Ordinal);

    public void Seed(int file, int function, bool gated) => Visit(file, function, gated);

    public void Run()
    {
        while (_ungated.Count > 0 || _gated.Count > 0)
        {
            bool gated = _ungated.Count == 0;
            var (file, function) = gated ? _gated.Dequeue() : _ungated.Dequeue();
            if (gated && _marks[file][function] == UngatedMark)
            {
                continue; // upgraded after it was queued
            }
            var graph = _files[file];
            foreach (var edge in graph.Functions[function].Edges)
            {
                bool edgeGated = gated || edge.Gated;
                if (edge.Kind == EdgeKind.Import)
                {
                    if (_resolveImport(file, edge.Import!) is { } target)
                    {
                        Visit(target.File, target.Function, edgeGated);
                    }
                    else
                    {
                        Unresolved.Add(edge.Import!);
                    }
                }
                else if (graph.Index.TryGetValue(edge.Target, out int t) && t >= 0 && !graph.IsData[t])
                {
                    Visit(file, t, edgeGated);
                }
            }
        }
    }

    private void Visit(int file, int function, bool gated)
    {
        ref byte mark = ref _marks[file][function];
        if (mark == UngatedMark || (gated && mark == GatedMark))
        {
            return;
        }
        mark = gated ? GatedMark : UngatedMark;
        (gated ? _gated : _ungated).Enqueue((file, function));
    }

    public IEnumerable<Reached> Reached()
    {
        for (int f = 0; f < _marks.Length; f++)
        {
            for (int i = 0; i < _marks[f].Length; i++)
            {
                if (_marks[f][i] != None)
                {
                    yield return new Reached(f, i, _marks[f][i] == GatedMark);
                }
            }
        }
    }

    public bool IsReached(int file, int function) => _marks[file][function] != None;

    /// <summary>Required (unconditional code of ungated functions) and gated features of what was reached.</summary>
    public (FeatureSet Required, FeatureSet Gated) Features()
    {
        var required = FeatureSet.Empty;
        var gated = FeatureSet.Empty;
        foreach (var r in Reached())
        {
            var f = _files[r.File].Functions[r.Function];
            if (r.Gated)
            {
                gated |= f.Ungated | f.Gated;
            }
            else
            {
                required |= f.Ungated;
                gated |= f.Gated;
            }
        }
        return (required, gated - required);
    }

    /// <summary>
    /// One location per feature: the lowest-address instruction, preferring (for required features) an
    /// ungated occurrence; deterministic whatever order the walk took.
    /// </summary>
    public Dictionary<CpuFeature, (int File, FeatureLocation Location)> Examples(FeatureSet required, FeatureSet gated)
    {
        var examples = new Dictionary<CpuFeature, (int File, FeatureLocation Location)>();
        foreach (var r in Reached().OrderBy(r => r.File).ThenBy(r => _files[r.File].Functions[r.Function].Entry))
        {
            var graph = _files[r.File];
            var f = graph.Functions[r.Function];
            foreach (var e in f.Examples)
            {
                bool isGated = r.Gated || e.Gated;
                var wanted = isGated ? gated : required;
                if (wanted.Contains(e.Feature)
                    && (!examples.TryGetValue(e.Feature, out var existing) || (existing.Location.Gated && !isGated)))
                {
                    examples[e.Feature] = (r.File, new FeatureLocation(graph.Symbols.Describe(f.Entry, e.Address), e.Address, isGated));
                }
            }
        }
        return examples;
    }
}
