using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;
using Iced.Intel;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Analyses one ELF file: finds roots (entry point, init/fini functions, exports, IFUNC resolvers, code
/// addresses stored in data), decodes every function reachable from them by recursive descent, summarises
/// each, learns which functions return or store feature bits and re-analyses their users, then walks the
/// call graph: features reachable without passing a feature test are required, the rest are gated.
/// </summary>
public static class BinaryAnalyzer
{
    public const int MaxFunctions = 1_000_000;
    private const int MaxRefinementRounds = 3;

    /// <param name="keepGraph">Keep the call graph in <see cref="FileAnalysis.Graph"/> for a cross-file closure walk.</param>
    public static FileAnalysis Analyze(string path, ElfFile file, bool keepGraph = false)
    {
        var run = new Run(path, file);
        return run.Execute(keepGraph);
    }

    private sealed class Run
    {
        private readonly string _path;
        private readonly ElfFile _file;
        private readonly CodeSpace _code;
        private readonly BinaryContext _context;
        private readonly FeatureVariables _variables = new();
        private readonly FunctionAnalyzer _analyzer;
        private readonly Dictionary<ulong, int> _index = [];
        private readonly List<FunctionSummary> _functions = [];
        private readonly HashSet<ulong> _resolvers = [];
        private readonly List<ulong> _roots = [];
        private readonly HashSet<ulong> _exportRoots = [];
        private readonly HashSet<ulong> _loadRootSet = [];
        private readonly Dictionary<string, ulong> _exports = new(StringComparer.Ordinal);
        /// <summary>(slot, code address) of code pointers stored in data.</summary>
        private readonly List<(ulong Slot, ulong Target)> _dataPointers = [];
        /// <summary>Code addresses decoded only because data points at them.</summary>
        private readonly List<ulong> _candidates = [];
        /// <summary>Known starts of data objects (pointed at by data, named by symbols, or LEA'd by code).</summary>
        private readonly List<ulong> _dataBoundaries = [];
        private const ulong MaxDataObject = 64 * 1024;
        /// <summary>Entries known to be code (symbols, entry points, direct call targets); the others were
        /// found only as addresses in data or LEA operands and are dropped if they decode like data.</summary>
        private readonly HashSet<ulong> _trusted = [];
        private readonly Queue<ulong> _pending = new();
        private readonly List<string> _warnings = [];
        private bool _truncated;

        public Run(string path, ElfFile file)
        {
            _path = path;
            _file = file;
            _code = new CodeSpace(file.CodeSections);
            _context = new BinaryContext(file, _code);
            _analyzer = new FunctionAnalyzer(_context, _variables);
            _warnings.AddRange(file.Warnings);
        }

        public FileAnalysis Execute(bool keepGraph)
        {
            CollectRoots();
            foreach (var (address, _, _) in _context.FunctionSymbols)
            {
                _code.MarkEntry(address);
            }
            foreach (var root in _roots)
            {
                Enqueue(root, _trusted.Contains(root));
            }
            foreach (var candidate in _candidates)
            {
                Enqueue(candidate, trusted: false);
            }
            Drain();
            Refine();
            return Summarize(keepGraph);
        }

        private void CollectRoots()
        {
            if (_file.Kind != ElfFileKind.SharedObject || _file.Interpreter is not null)
            {
                AddRoot(_file.Entry, trusted: true);
            }
            if (_file.InitFunction is { } init)
            {
                AddRoot(init, trusted: true);
            }
            if (_file.FiniFunction is { } fini)
            {
                AddRoot(fini, trusted: true);
            }
            foreach (var (address, size) in _file.FunctionArrays)
            {
                for (ulong slot = address; slot < address + Math.Min(size, 1UL << 20); slot += 8)
                {
                    if (_context.TryGetGotSlot(slot, out var got) && got.Kind == GotSlotKind.Local)
                    {
                        AddRoot(got.Target, trusted: true);
                    }
                    else if (_file.TryReadUInt64(slot, out var pointer))
                    {
                        AddRoot(pointer, trusted: true);
                    }
                }
            }
            foreach (var symbol in _file.DynamicSymbols.Concat(_file.Symbols))
            {
                if (symbol.IsDefined && symbol.IsObject && symbol.Value != 0)
                {
                    _dataBoundaries.Add(symbol.Value);
                }
                if (!symbol.IsDefined || !symbol.IsFunction)
                {
                    continue;
                }
                _trusted.Add(symbol.Value);
                if (symbol.IsIfunc)
                {
                    _resolvers.Add(symbol.Value);
                }
                if (symbol.IsExported)
                {
                    // An IFUNC export resolves to its resolver, which runs when another module binds the name.
                    _exports.TryAdd(symbol.Name, symbol.Value);
                    AddRoot(symbol.Value, trusted: true, export: true);
                }
                else if (!symbol.IsDynamic && symbol.Name == "main")
                {
                    AddRoot(symbol.Value, trusted: true);
                }
            }
            foreach (var relocation in _file.Relocations)
            {
                switch (relocation.Type)
                {
                    case ElfConstants.RX86_64_Irelative:
                        _resolvers.Add((ulong)relocation.Addend);
                        AddRoot((ulong)relocation.Addend, trusted: true);
                        break;
                    case ElfConstants.RX86_64_Relative:
                        // A code address stored in data (vtables, callback tables). Decoded as a candidate
                        // (tables kept in .text decode like data and are dropped); reachable through whoever
                        // references the table, see AttachDataPointers.
                        AddDataPointer(relocation.Offset, (ulong)relocation.Addend);
                        break;
                    case ElfConstants.RX86_64_64 when relocation.SymbolDefined:
                        AddDataPointer(relocation.Offset, relocation.SymbolValue + (ulong)relocation.Addend);
                        break;
                }
            }
        }

        private void AddDataPointer(ulong slot, ulong target)
        {
            if (_code.Contains(target))
            {
                _dataPointers.Add((slot, target));
                _candidates.Add(target);
            }
            else if (target != 0)
            {
                _dataBoundaries.Add(target);
            }
        }

        private void AddRoot(ulong address, bool trusted, bool export = false)
        {
            if (address != 0 && _code.Contains(address))
            {
                _roots.Add(address);
                if (export)
                {
                    _exportRoots.Add(address);
                }
                else
                {
                    _loadRootSet.Add(address);
                }
                if (trusted)
                {
                    _trusted.Add(address);
                    _code.MarkEntry(address);
                }
            }
        }

        private void Enqueue(ulong address, bool trusted)
        {
            if (trusted && _trusted.Add(address) && _index.TryGetValue(address, out int known) && known >= 0
                && _functions[known].Implausible)
            {
                // Data-like but called directly after all: follow what it was holding back.
                EnqueueEdges(_functions[known]);
            }
            if (!_index.ContainsKey(address) && _code.Contains(address))
            {
                if (_index.Count >= MaxFunctions)
                {
                    _truncated = true;
                    return;
                }
                _index[address] = -1;
                if (trusted)
                {
                    _code.MarkEntry(address);
                }
                _pending.Enqueue(address);
            }
        }

        private void Drain()
        {
            while (_pending.Count > 0)
            {
                ulong entry = _pending.Dequeue();
                var summary = AnalyzeOne(entry);
                if (_index[entry] < 0)
                {
                    _index[entry] = _functions.Count;
                    _functions.Add(summary);
                }
                else
                {
                    _functions[_index[entry]] = summary;
                }
                if (!summary.Implausible || _trusted.Contains(entry))
                {
                    EnqueueEdges(summary);
                }
            }
        }

        private void EnqueueEdges(FunctionSummary summary)
        {
            foreach (var edge in summary.Edges)
            {
                if (edge.Kind is not (EdgeKind.Import or EdgeKind.DataRef))
                {
                    Enqueue(edge.Target, edge.Kind is EdgeKind.Call or EdgeKind.Tail);
                }
            }
        }

        /// <summary>A function that decodes like data and that nothing calls directly is data, not code.</summary>
        private bool IsData(int index) => _functions[index].Implausible && !_trusted.Contains(_functions[index].Entry);

        private FunctionSummary AnalyzeOne(ulong entry)
        {
            var summary = _analyzer.Analyze(entry, _resolvers.Contains(entry));
            foreach (var (address, size) in _analyzer.LastStores)
            {
                _variables.Add(address, size);
            }
            _truncated |= summary.Truncated;
            return summary;
        }

        /// <summary>
        /// What one pass learns changes how others decode: a function that never returns ends its callers'
        /// runs; one that returns feature bits, or a variable CPUID results were stored into, makes its users
        /// feature tests. Re-analyse the affected functions until nothing new is learned (bounded).
        /// </summary>
        private void Refine()
        {
            var knownNoReturn = new HashSet<ulong>();
            var knownFeatureFunctions = new HashSet<ulong>(_context.FeatureFunctionAddresses);
            int knownVariables = 0;
            for (int round = 0; round < MaxRefinementRounds; round++)
            {
                var newNoReturn = new HashSet<ulong>();
                var newFeature = new HashSet<ulong>();
                foreach (var f in _functions)
                {
                    if (f.NeverReturns && knownNoReturn.Add(f.Entry))
                    {
                        newNoReturn.Add(f.Entry);
                        _context.AddNoReturn(f.Entry);
                    }
                    if (f.ReturnsFeatures && knownFeatureFunctions.Add(f.Entry))
                    {
                        newFeature.Add(f.Entry);
                        _context.AddFeatureFunction(f.Entry);
                    }
                }
                int variablesBefore = knownVariables;
                bool newVariables = _variables.Count > knownVariables;
                knownVariables = _variables.Count;
                if (newNoReturn.Count == 0 && newFeature.Count == 0 && !newVariables)
                {
                    return;
                }
                var redo = new List<ulong>();
                foreach (var f in _functions)
                {
                    bool affected = newVariables && f.MayRead(_variables, variablesBefore);
                    foreach (var edge in f.Edges)
                    {
                        if (affected)
                        {
                            break;
                        }
                        // A sized function cannot run into its neighbour after a call that does not return,
                        // so only unsized ones are re-decoded for that; feature accessors matter to all.
                        affected = edge.Kind == EdgeKind.Call
                            && ((newNoReturn.Contains(edge.Target) && _context.SizeOf(f.Entry) == 0) || newFeature.Contains(edge.Target));
                    }
                    if (affected)
                    {
                        redo.Add(f.Entry);
                    }
                }
                foreach (var entry in redo)
                {
                    _pending.Enqueue(entry);
                }
                Drain();
            }
        }

        private FileGraph BuildGraph()
        {
            int n = _functions.Count;
            var isData = new bool[n];
            for (int i = 0; i < n; i++)
            {
                isData[i] = IsData(i);
            }
            var loadRoots = new List<int>();
            var exportRoots = new List<int>();
            foreach (var root in _roots.Distinct())
            {
                if (_index.TryGetValue(root, out int i) && i >= 0 && !isData[i])
                {
                    (_loadRootSet.Contains(root) ? loadRoots : exportRoots).Add(i);
                }
            }
            loadRoots = [.. loadRoots.Distinct()];
            var functions = AttachDataPointers(isData, loadRoots);
            var exports = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (name, address) in _exports)
            {
                if (_index.TryGetValue(address, out int i) && i >= 0)
                {
                    exports[name] = i;
                }
            }
            return new FileGraph
            {
                Path = _path,
                Functions = functions,
                Index = _index,
                IsData = isData,
                LoadRoots = [.. loadRoots],
                ExportRoots = [.. exportRoots],
                Exports = exports,
                Symbols = _context.Symbols,
            };
        }

        /// <summary>
        /// A code pointer stored in a data object is reachable when code takes that object's address — with the
        /// same gating (so OpenSSL's AES-NI method table, picked after a capability test, yields gated code) —
        /// and is a load root when no code names the object (it is reached through other data).
        /// The object holding a slot is the nearest known object start at or below it.
        /// </summary>
        private FunctionSummary[] AttachDataPointers(bool[] isData, List<int> loadRoots)
        {
            var functions = _functions.ToArray();
            if (_dataPointers.Count == 0)
            {
                return functions;
            }
            // (object address, referring function, gated), sorted by address: one flat array, no per-object lists.
            var references = new List<(ulong Target, int Function, bool Gated)>();
            for (int i = 0; i < functions.Length; i++)
            {
                if (isData[i])
                {
                    continue;
                }
                foreach (var edge in functions[i].Edges)
                {
                    if (edge.Kind == EdgeKind.DataRef)
                    {
                        references.Add((edge.Target, i, edge.Gated));
                        _dataBoundaries.Add(edge.Target);
                    }
                }
            }
            references.Sort();
            _dataBoundaries.Sort();
            var extra = new Dictionary<int, List<CallEdge>>();
            foreach (var (slot, target) in _dataPointers)
            {
                if (!_index.TryGetValue(target, out int t) || t < 0 || isData[t])
                {
                    continue;
                }
                int b = _dataBoundaries.BinarySearch(slot);
                b = b >= 0 ? b : ~b - 1;
                bool attached = false;
                if (b >= 0 && slot - _dataBoundaries[b] < MaxDataObject)
                {
                    ulong owner = _dataBoundaries[b];
                    int r = references.BinarySearch((owner, -1, false));
                    for (r = r >= 0 ? r : ~r; r < references.Count && references[r].Target == owner; r++)
                    {
                        var (_, function, gated) = references[r];
                        if (!extra.TryGetValue(function, out var list))
                        {
                            extra[function] = list = [];
                        }
                        list.Add(new CallEdge(target, EdgeKind.AddressTaken, gated, null));
                        attached = true;
                    }
                }
                if (!attached)
                {
                    loadRoots.Add(t);
                }
            }
            foreach (var (function, edges) in extra)
            {
                var f = functions[function];
                functions[function] = new FunctionSummary
                {
                    Entry = f.Entry,
                    Ungated = f.Ungated,
                    Gated = f.Gated,
                    Edges = [.. f.Edges, .. edges.Distinct()],
                    Examples = f.Examples,
                    TestsFeatures = f.TestsFeatures,
                    ReturnsFeatures = f.ReturnsFeatures,
                    NeverReturns = f.NeverReturns,
                    DataReads = f.DataReads,
                    Instructions = f.Instructions,
                    Runs = f.Runs,
                    Truncated = f.Truncated,
                    Implausible = f.Implausible,
                };
            }
            return functions;
        }

        private FileAnalysis Summarize(bool keepGraph)
        {
            var graph = BuildGraph();
            var walk = new GraphWalk([graph], (_, _) => null);
            foreach (int root in graph.LoadRoots.Concat(graph.ExportRoots))
            {
                walk.Seed(0, root, gated: false);
            }
            walk.Run();
            var (required, gatedFeatures) = walk.Features();

            var unreached = FeatureSet.Empty;
            long instructions = 0;
            int reachable = 0, testers = 0;
            for (int i = 0; i < _functions.Count; i++)
            {
                var f = _functions[i];
                instructions += f.Instructions;
                testers += f.TestsFeatures ? 1 : 0;
                if (walk.IsReached(0, i))
                {
                    reachable++;
                }
                else if (!graph.IsData[i])
                {
                    unreached |= f.Ungated | f.Gated;
                }
            }
            var examples = walk.Examples(required, gatedFeatures).ToDictionary(kv => kv.Key, kv => kv.Value.Location);
            var (swept, sweptExamples, coveredBytes) = SweepUncovered();
            unreached = (unreached | swept) - required - gatedFeatures;
            AddUnreachedExamples(examples, unreached, walk, graph);
            foreach (var feature in (unreached - CpuFeatureInfo.Baseline).Members())
            {
                if (!examples.ContainsKey(feature) && sweptExamples.TryGetValue(feature, out var address))
                {
                    examples[feature] = new FeatureLocation(_context.NameFor(address) ?? $"0x{address:x}", address, false);
                }
            }

            var level = CpuFeatureInfo.ImpliedLevel(required);
            var noteNeeded = LevelFromNote(_file.IsaNote.Needed);
            var noteUsed = LevelFromNote(_file.IsaNote.Used);
            var all = required | gatedFeatures | unreached;
            if (_truncated)
            {
                _warnings.Add("analysis limits reached (function, run or instruction caps): the result covers only what was decoded");
            }
            var analysis = new FileAnalysis
            {
                Path = _path,
                Kind = _file.Kind,
                Required = required - CpuFeatureInfo.Baseline,
                BaselineUsed = required & CpuFeatureInfo.Baseline,
                Gated = gatedFeatures - CpuFeatureInfo.Baseline,
                Unreached = unreached - CpuFeatureInfo.Baseline,
                Level = level,
                NoteNeeded = noteNeeded,
                NoteUsed = noteUsed,
                NoteCheck = CheckNote(level, CpuFeatureInfo.ImpliedLevel(all), noteNeeded, noteUsed),
                Examples = examples,
                Needed = _file.Needed,
                RunPath = _file.RunPath,
                RPath = _file.RPath,
                Interpreter = _file.Interpreter,
                Warnings = _warnings,
                Stats = new AnalysisStats(_functions.Count, reachable, instructions, _code.TotalBytes, coveredBytes, testers, _truncated),
            };
            analysis.SetGraph(keepGraph ? graph : null);
            return analysis;
        }

        private void AddUnreachedExamples(Dictionary<CpuFeature, FeatureLocation> examples, FeatureSet unreached, GraphWalk walk, FileGraph graph)
        {
            foreach (int i in Enumerable.Range(0, _functions.Count).OrderBy(i => _functions[i].Entry))
            {
                if (walk.IsReached(0, i) || graph.IsData[i])
                {
                    continue;
                }
                foreach (var e in _functions[i].Examples)
                {
                    if (unreached.Contains(e.Feature) && !examples.ContainsKey(e.Feature))
                    {
                        examples[e.Feature] = new FeatureLocation(_context.Symbols.Describe(_functions[i].Entry, e.Address), e.Address, false);
                    }
                }
            }
        }

        /// <summary>
        /// Linear sweep of code bytes no run covered (padding, data in text, code nothing reaches). Only
        /// "islands" that decode cleanly up to a RET or JMP count; an invalid or privileged instruction
        /// discards the island as data.
        /// </summary>
        private unsafe (FeatureSet Features, Dictionary<CpuFeature, ulong> Examples, ulong Covered) SweepUncovered()
        {
            var features = FeatureSet.Empty;
            var examples = new Dictionary<CpuFeature, ulong>();
            var reader = new PointerCodeReader(_file.Image.Pointer);
            var decoder = Decoder.Create(64, reader, DecoderOptions.None);
            var islandExamples = new List<(CpuFeature, ulong)>();
            ulong uncovered = 0;
            foreach (var (section, start, end) in _code.Uncovered())
            {
                uncovered += end - start;
                var s = _code.Section(section);
                reader.Seek((int)(s.Offset + (start - s.Address)), (int)(s.Offset + (end - s.Address)));
                decoder.IP = start;
                var island = FeatureSet.Empty;
                islandExamples.Clear();
                while (decoder.IP < end)
                {
                    ulong ip = decoder.IP;
                    decoder.Decode(out var instruction);
                    if (instruction.IsInvalid || InstructionTraits.IsImplausible(instruction.Code))
                    {
                        island = FeatureSet.Empty;
                        islandExamples.Clear();
                        reader.Seek((int)(s.Offset + (ip + 1 - s.Address)), (int)(s.Offset + (end - s.Address)));
                        decoder.IP = ip + 1;
                        continue;
                    }
                    var needed = IcedFeatureMap.For(instruction.Code);
                    if (!(needed - island).IsEmpty)
                    {
                        foreach (var feature in (needed - island).Members())
                        {
                            islandExamples.Add((feature, ip));
                        }
                        island |= needed;
                    }
                    if (instruction.FlowControl is FlowControl.Return or FlowControl.UnconditionalBranch or FlowControl.IndirectBranch)
                    {
                        features |= island;
                        foreach (var (feature, at) in islandExamples)
                        {
                            examples.TryAdd(feature, at);
                        }
                        island = FeatureSet.Empty;
                        islandExamples.Clear();
                    }
                }
            }
            return (features, examples, _code.TotalBytes - uncovered);
        }

        private static IsaLevel? LevelFromNote(uint? bits)
        {
            if (bits is not uint b)
            {
                return null;
            }
            return (b & 8) != 0 ? IsaLevel.V4 : (b & 4) != 0 ? IsaLevel.V3 : (b & 2) != 0 ? IsaLevel.V2 : (b & 1) != 0 ? IsaLevel.V1 : IsaLevel.None;
        }

        private static NoteCheck CheckNote(IsaLevel required, IsaLevel all, IsaLevel? needed, IsaLevel? used)
        {
            if (needed is null && used is null)
            {
                return new NoteCheck("absent", "no GNU_PROPERTY_X86_ISA_1 note");
            }
            var details = new List<string>();
            string status = "ok";
            if (needed is IsaLevel n)
            {
                if (n < required)
                {
                    status = "stale";
                    details.Add($"ISA_1_NEEDED says {n.ToPsAbiName()} but unconditionally reachable code needs {required.ToPsAbiName()}");
                }
                else if (n > required)
                {
                    status = "over-marked";
                    details.Add($"ISA_1_NEEDED says {n.ToPsAbiName()} but unconditionally reachable code needs only {required.ToPsAbiName()}");
                }
                else
                {
                    details.Add($"ISA_1_NEEDED {n.ToPsAbiName()} matches the required code");
                }
            }
            if (used is IsaLevel u)
            {
                if (u < all)
                {
                    status = status == "ok" ? "stale" : status;
                    details.Add($"ISA_1_USED says {u.ToPsAbiName()} but the code contains {all.ToPsAbiName()} instructions");
                }
                else if (u > all)
                {
                    status = status == "ok" ? "over-marked" : status;
                    details.Add($"ISA_1_USED says {u.ToPsAbiName()} but no instruction needs more than {all.ToPsAbiName()}");
                }
            }
            return new NoteCheck(status, string.Join("; ", details));
        }
    }
}
