using System.Collections.Concurrent;
using System.Diagnostics;
using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Closure;

/// <summary>Why a file is in the scan.</summary>
public enum FileRole
{
    /// <summary>Named on the command line, or found in a directory that was.</summary>
    Input,
    /// <summary>Loaded because something in the closure names it in DT_NEEDED.</summary>
    Dependency,
    /// <summary>A glibc-hwcaps copy the loader prefers on CPUs of a higher psABI level.</summary>
    HwcapsVariant,
}

public sealed class ScanOptions
{
    /// <summary>Follow DT_NEEDED from every analysed file.</summary>
    public bool FollowNeeded { get; init; } = true;

    /// <summary>Upper bound on files analysed in total (inputs plus dependencies).</summary>
    public int MaxFiles { get; init; } = 20_000;

    /// <summary>Closures up to this many files are walked across files (imports resolved to the exports
    /// they bind to); larger ones fall back to the union of each file's own result.</summary>
    public int PreciseClosureLimit { get; init; } = 256;

    public int Parallelism { get; init; } = Environment.ProcessorCount;

    public LibrarySearch? Search { get; init; }
}

public sealed class ScannedFile
{
    public required string Path { get; init; }
    public required FileRole Role { get; init; }
    public FileAnalysis? Analysis { get; init; }
    public ElfFormatException? Error { get; init; }

    /// <summary>For hwcaps variants: the level whose directory holds it.</summary>
    public IsaLevel? HwcapsLevel { get; init; }

    /// <summary>DT_NEEDED name → resolved path (null: not found).</summary>
    public IReadOnlyDictionary<string, string?> Resolved { get; set; } = new Dictionary<string, string?>();
}

/// <summary>The workload as a whole: what every scanned input and everything it loads needs.</summary>
public sealed class ClosureResult
{
    /// <summary>"imports": call graphs walked across files; "union": each file's own result, unioned.</summary>
    public required string Mode { get; init; }
    public required FeatureSet Required { get; init; }
    public required FeatureSet BaselineUsed { get; init; }
    public required FeatureSet Gated { get; init; }
    public required IsaLevel Level { get; init; }
    public required IReadOnlyDictionary<CpuFeature, (string Path, FeatureLocation Location)> Examples { get; init; }
    public required IReadOnlyList<string> Files { get; init; }
    public required IReadOnlyList<string> MissingLibraries { get; init; }
    public required IReadOnlyList<string> UnresolvedImports { get; init; }
}

public sealed class ScanReport
{
    public required IReadOnlyList<ScannedFile> Files { get; init; }
    public required ClosureResult Closure { get; init; }
    public required int Inputs { get; init; }
    public required int InputErrors { get; init; }
    public required int SkippedNonElf { get; init; }
    public required TimeSpan Elapsed { get; init; }
    public long Instructions => Files.Sum(f => f.Analysis?.Stats.Instructions ?? 0);
    public ulong CodeBytes => Files.Aggregate(0UL, (sum, f) => sum + (f.Analysis?.Stats.CodeBytes ?? 0));
}

/// <summary>
/// Runs `cpu scan`: expands directories, analyses files in parallel (each file once, by real path), follows
/// DT_NEEDED through the loader's search path (glibc-hwcaps included) and computes the closure.
/// </summary>
public sealed class ScanSession(ScanOptions options)
{
    private readonly LibrarySearch _search = options.Search ?? LibrarySearch.ForThisSystem();

    /// <summary>Resolutions for loaders without RPATH/RUNPATH depend on the name alone: most of them.</summary>
    private readonly Dictionary<string, LibraryResolution> _plainResolutions = new(StringComparer.Ordinal);

    private LibraryResolution Resolve(string name, LoaderContext loader)
    {
        bool plain = loader.RunPath is null && !name.Contains('/');
        for (var context = loader; plain && context is not null; context = context.Parent)
        {
            plain = context.RPath is null;
        }
        if (!plain)
        {
            return _search.Resolve(name, loader);
        }
        if (!_plainResolutions.TryGetValue(name, out var resolution))
        {
            _plainResolutions[name] = resolution = _search.Resolve(name, loader);
        }
        return resolution;
    }

    public ScanReport Run(IReadOnlyList<string> inputs, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        int skipped = 0;
        var files = new List<ScannedFile>();
        var byRealPath = new Dictionary<string, ScannedFile>(StringComparer.Ordinal);
        var loaders = new Dictionary<string, LoaderContext>(StringComparer.Ordinal);

        var wave = new List<(string Path, string RealPath, FileRole Role, IsaLevel? Level)>();
        var inputErrors = new List<ScannedFile>();
        foreach (var input in inputs)
        {
            foreach (var (path, error) in Expand(input, ref skipped))
            {
                if (error is not null)
                {
                    var failed = new ScannedFile { Path = path, Role = FileRole.Input, Error = error };
                    files.Add(failed);
                    inputErrors.Add(failed);
                    continue;
                }
                var real = RealPath(path);
                if (!byRealPath.ContainsKey(real) && !wave.Any(w => w.RealPath == real))
                {
                    wave.Add((path, real, FileRole.Input, null));
                }
            }
        }
        int inputCount = files.Count + wave.Count;
        bool keepGraphs = true;
        while (wave.Count > 0 && byRealPath.Count < options.MaxFiles)
        {
            cancellation.ThrowIfCancellationRequested();
            if (byRealPath.Count + wave.Count > options.PreciseClosureLimit)
            {
                keepGraphs = false;
            }
            var results = AnalyzeWave(wave, keepGraphs, cancellation);
            var next = new List<(string, string, FileRole, IsaLevel?)>();
            foreach (var scanned in results)
            {
                files.Add(scanned);
                byRealPath[RealPath(scanned.Path)] = scanned;
            }
            if (!options.FollowNeeded)
            {
                break;
            }
            foreach (var scanned in results)
            {
                if (scanned.Analysis is not { } analysis)
                {
                    continue;
                }
                // The program interpreter (ld.so) is loaded before anything DT_NEEDED names.
                if (analysis.Interpreter is { } interpreter && LibrarySearch.IsX86_64Elf(interpreter))
                {
                    var real = RealPath(interpreter);
                    if (!byRealPath.ContainsKey(real) && !next.Any(n => n.Item2 == real))
                    {
                        next.Add((interpreter, real, FileRole.Dependency, null));
                    }
                }
                if (analysis.Needed.Count == 0)
                {
                    continue;
                }
                var loader = new LoaderContext(scanned.Path, analysis.RPath, analysis.RunPath,
                    loaders.GetValueOrDefault(RealPath(scanned.Path)));
                var resolved = new Dictionary<string, string?>(StringComparer.Ordinal);
                foreach (var name in analysis.Needed)
                {
                    var resolution = Resolve(name, loader);
                    resolved[name] = resolution.Path;
                    if (resolution.Path is { } found)
                    {
                        Schedule(found, FileRole.Dependency, null, loader);
                    }
                    foreach (var (level, variant) in resolution.HwcapsVariants)
                    {
                        Schedule(variant, FileRole.HwcapsVariant, level, loader);
                    }
                }
                scanned.Resolved = resolved;

                void Schedule(string path, FileRole role, IsaLevel? level, LoaderContext parent)
                {
                    var real = RealPath(path);
                    if (!byRealPath.ContainsKey(real) && !next.Any(n => n.Item2 == real) && byRealPath.Count + next.Count < options.MaxFiles)
                    {
                        next.Add((path, real, role, level));
                        loaders.TryAdd(real, parent);
                    }
                }
            }
            wave = next;
        }
        if (!keepGraphs)
        {
            // Graphs of early waves are useless once the closure is too big to walk; let them go.
            foreach (var f in files)
            {
                f.Analysis?.DropGraph();
            }
        }
        var closure = keepGraphs ? ClosureWalk.Precise(files) : ClosureWalk.Union(files);
        foreach (var f in files)
        {
            f.Analysis?.DropGraph();
        }
        int failedInputs = files.Count(f => f.Role == FileRole.Input && f.Error is not null);
        return new ScanReport
        {
            Files = files,
            Closure = closure,
            Inputs = inputCount,
            InputErrors = failedInputs,
            SkippedNonElf = skipped,
            Elapsed = clock.Elapsed,
        };
    }

    private List<ScannedFile> AnalyzeWave(List<(string Path, string RealPath, FileRole Role, IsaLevel? Level)> wave, bool keepGraphs, CancellationToken cancellation)
    {
        var results = new ScannedFile[wave.Count];
        // Largest first, so one big file does not start last and leave a core idle at the end.
        var order = Enumerable.Range(0, wave.Count).OrderByDescending(i => SafeLength(wave[i].Path)).ToArray();
        var partitioner = Partitioner.Create(order, EnumerablePartitionerOptions.NoBuffering);
        Parallel.ForEach(partitioner, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Parallelism), CancellationToken = cancellation }, i =>
        {
            var (path, _, role, level) = wave[i];
            results[i] = AnalyzeOne(path, role, level, keepGraphs);
        });
        return [.. results];
    }

    public static ScannedFile AnalyzeOne(string path, FileRole role, IsaLevel? level, bool keepGraph)
    {
        try
        {
            using var image = ElfImage.Open(path);
            var elf = ElfFile.Parse(image);
            var analysis = BinaryAnalyzer.Analyze(path, elf, keepGraph);
            return new ScannedFile { Path = path, Role = role, Analysis = analysis, HwcapsLevel = level };
        }
        catch (ElfFormatException e)
        {
            return new ScannedFile { Path = path, Role = role, Error = e, HwcapsLevel = level };
        }
    }

    /// <summary>Files under a path: directories recursively (not following directory symlinks, skipping files
    /// without the ELF magic), a file as itself. A missing path is an error entry.</summary>
    private static IEnumerable<(string Path, ElfFormatException? Error)> Expand(string input, ref int skipped)
    {
        var list = new List<(string, ElfFormatException?)>();
        if (Directory.Exists(input))
        {
            var options = new EnumerationOptions
            {
                RecurseSubdirectories = true,
                AttributesToSkip = FileAttributes.ReparsePoint,
                IgnoreInaccessible = true,
                ReturnSpecialDirectories = false,
            };
            var candidates = Directory.EnumerateFiles(input, "*", options).Order(StringComparer.Ordinal).ToArray();
            // Reading four bytes of every file dominates expansion of big trees: do it in parallel.
            var isElf = new bool[candidates.Length];
            Parallel.For(0, candidates.Length, i => isElf[i] = HasElfMagic(candidates[i]));
            for (int i = 0; i < candidates.Length; i++)
            {
                if (isElf[i])
                {
                    list.Add((candidates[i], null));
                }
                else
                {
                    skipped++;
                }
            }
        }
        else if (File.Exists(input))
        {
            list.Add((input, null));
        }
        else
        {
            list.Add((input, new ElfFormatException(ElfErrorKind.Io, "no such file or directory")));
        }
        return list;
    }

    private static bool HasElfMagic(string path)
    {
        try
        {
            // FIFOs and devices report length 0: never open them (opening a FIFO blocks).
            if (new FileInfo(path).Length < 4)
            {
                return false;
            }
            Span<byte> magic = stackalloc byte[4];
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4
                && magic[0] == 0x7f && magic[1] == (byte)'E' && magic[2] == (byte)'L' && magic[3] == (byte)'F';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long SafeLength(string path)
    {
        try
        {
            return new FileInfo(path).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    internal static string RealPath(string path)
    {
        try
        {
            var full = Path.GetFullPath(path);
            var target = File.ResolveLinkTarget(full, returnFinalTarget: true);
            return target?.FullName ?? RealDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Path.GetFullPath(path);
        }
    }

    /// <summary>Resolves symlinked parent directories (e.g. /lib → /usr/lib on merged-/usr systems).</summary>
    private static string RealDirectory(string full)
    {
        var directory = Path.GetDirectoryName(full);
        if (directory is null)
        {
            return full;
        }
        var info = new DirectoryInfo(directory);
        var target = info.ResolveLinkTarget(returnFinalTarget: true);
        var real = target is not null ? target.FullName : directory == "/" ? "/" : RealDirectory(directory);
        return Path.Combine(real, Path.GetFileName(full));
    }
}
