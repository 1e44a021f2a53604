using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Closure;

/// <summary>
/// Computes what a whole closure needs. "imports" mode walks the call graphs across files: inputs contribute
/// all their roots, libraries only what runs on load (init functions, IFUNC resolvers, code reachable through
/// data) plus the exports something reached actually imports — so a program that never calls pkey_set does
/// not need PKU just because libc exports it. glibc-hwcaps variants only ever contribute gated features.
/// "union" mode (for closures too big to keep every call graph) unions each file's own result.
/// </summary>
internal static class ClosureWalk
{
    public static ClosureResult Union(IReadOnlyList<ScannedFile> files)
    {
        var required = FeatureSet.Empty;
        var baseline = FeatureSet.Empty;
        var gated = FeatureSet.Empty;
        var examples = new Dictionary<CpuFeature, (string, FeatureLocation)>();
        foreach (var f in files)
        {
            if (f.Analysis is not { } a)
            {
                continue;
            }
            if (f.Role == FileRole.HwcapsVariant)
            {
                gated |= a.Required | a.Gated;
                continue;
            }
            required |= a.Required;
            baseline |= a.BaselineUsed;
            gated |= a.Gated;
        }
        gated -= required;
        foreach (var f in files)
        {
            if (f.Analysis is not { } a)
            {
                continue;
            }
            foreach (var (feature, location) in a.Examples)
            {
                bool wanted = f.Role != FileRole.HwcapsVariant && !location.Gated ? required.Contains(feature) : gated.Contains(feature);
                if (wanted && !examples.ContainsKey(feature))
                {
                    examples[feature] = (f.Path, location with { Gated = !required.Contains(feature) });
                }
            }
        }
        return Build("union", files, required, baseline, gated, examples, []);
    }

    public static ClosureResult Precise(IReadOnlyList<ScannedFile> files)
    {
        var graphs = new List<FileGraph>();
        var scanned = new List<ScannedFile>();
        foreach (var f in files)
        {
            if (f.Role != FileRole.HwcapsVariant && f.Analysis?.Graph is { } graph)
            {
                graphs.Add(graph);
                scanned.Add(f);
            }
        }
        // Libraries some input needs are reached through imports; other input libraries stand alone
        // (a plugin, or a library scanned for itself) and count with all their exports.
        var needed = new HashSet<string>(files.SelectMany(f => f.Resolved.Values).OfType<string>().Select(ScanSession.RealPath), StringComparer.Ordinal);
        var scope = BuildScope(graphs, scanned);
        var walk = new GraphWalk(graphs, (file, name) => scope.TryGetValue(name, out var target) ? target : null);
        for (int i = 0; i < graphs.Count; i++)
        {
            var f = scanned[i];
            bool isProgram = f.Analysis!.Kind is ElfFileKind.Executable or ElfFileKind.PieExecutable;
            bool standalone = f.Role == FileRole.Input && (isProgram || !needed.Contains(ScanSession.RealPath(f.Path)));
            foreach (int root in graphs[i].LoadRoots)
            {
                walk.Seed(i, root, gated: false);
            }
            if (standalone)
            {
                foreach (int root in graphs[i].ExportRoots)
                {
                    walk.Seed(i, root, gated: false);
                }
            }
        }
        walk.Run();
        var (required, gated) = walk.Features();
        foreach (var f in files)
        {
            if (f.Role == FileRole.HwcapsVariant && f.Analysis is { } variant)
            {
                gated |= variant.Required | variant.Gated;
            }
        }
        gated -= required;
        var examples = walk.Examples(required, gated).ToDictionary(kv => kv.Key, kv => (scanned[kv.Value.File].Path, kv.Value.Location));
        foreach (var f in files)
        {
            if (f.Role == FileRole.HwcapsVariant && f.Analysis is { } variant)
            {
                foreach (var (feature, location) in variant.Examples)
                {
                    if (gated.Contains(feature))
                    {
                        examples.TryAdd(feature, (f.Path, location with { Gated = true }));
                    }
                }
            }
        }
        var baseline = required & CpuFeatureInfo.Baseline;
        return Build("imports", files, required - CpuFeatureInfo.Baseline, baseline, gated - CpuFeatureInfo.Baseline, examples, [.. walk.Unresolved]);
    }

    /// <summary>
    /// The global symbol scope: programs first, then libraries in breadth-first load order; the first
    /// definition of a name wins, as with ld.so's default lookup.
    /// </summary>
    private static Dictionary<string, (int File, int Function)> BuildScope(List<FileGraph> graphs, List<ScannedFile> scanned)
    {
        var scope = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        var order = Enumerable.Range(0, graphs.Count)
            .OrderBy(i => scanned[i].Analysis!.Kind is ElfFileKind.Executable or ElfFileKind.PieExecutable ? 0 : 1)
            .ThenBy(i => i);
        foreach (int i in order)
        {
            foreach (var (name, function) in graphs[i].Exports)
            {
                scope.TryAdd(name, (i, function));
            }
        }
        return scope;
    }

    private static ClosureResult Build(string mode, IReadOnlyList<ScannedFile> files, FeatureSet required, FeatureSet baseline,
        FeatureSet gated, Dictionary<CpuFeature, (string, FeatureLocation)> examples, List<string> unresolved)
    {
        var missing = files.SelectMany(f => f.Resolved.Where(kv => kv.Value is null).Select(kv => kv.Key))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return new ClosureResult
        {
            Mode = mode,
            Required = required - CpuFeatureInfo.Baseline,
            BaselineUsed = baseline,
            Gated = gated - CpuFeatureInfo.Baseline,
            Level = CpuFeatureInfo.ImpliedLevel(required),
            Examples = examples,
            Files = [.. files.Where(f => f.Analysis is not null).Select(f => f.Path)],
            MissingLibraries = missing,
            UnresolvedImports = unresolved,
        };
    }
}
