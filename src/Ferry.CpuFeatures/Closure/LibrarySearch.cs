using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Closure;

/// <summary>Where a DT_NEEDED name resolves: the library every CPU loads, and the glibc-hwcaps variants a
/// CPU of a higher psABI level loads instead (so their code only ever runs behind the loader's own test).</summary>
public sealed record LibraryResolution(string Name, string? Path, IReadOnlyList<(IsaLevel Level, string Path)> HwcapsVariants);

/// <summary>The RPATH/RUNPATH context of the object that needs a library (glibc: an object's DT_RPATH is used,
/// and its loaders' DT_RPATHs after it, only when the object has no DT_RUNPATH).</summary>
public sealed record LoaderContext(string ObjectPath, string? RPath, string? RunPath, LoaderContext? Parent);

/// <summary>
/// Resolves DT_NEEDED names like glibc's ld.so: DT_RPATH (when there is no DT_RUNPATH), LD_LIBRARY_PATH,
/// DT_RUNPATH, the directories of /etc/ld.so.conf (what ldconfig puts in the cache), then the default
/// directories. In each directory glibc-hwcaps/x86-64-v4, -v3, -v2 are looked at before the directory itself.
/// </summary>
public sealed class LibrarySearch
{
    public static readonly string[] DefaultDirectories = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];
    private static readonly (IsaLevel Level, string Directory)[] HwcapsDirectories =
        [(IsaLevel.V4, "glibc-hwcaps/x86-64-v4"), (IsaLevel.V3, "glibc-hwcaps/x86-64-v3"), (IsaLevel.V2, "glibc-hwcaps/x86-64-v2")];

    private readonly IReadOnlyList<string> _ldLibraryPath;
    private readonly IReadOnlyList<string> _configured;
    private readonly IReadOnlyList<string> _defaults;

    public LibrarySearch(IReadOnlyList<string> ldLibraryPath, IReadOnlyList<string> configured, IReadOnlyList<string> defaults)
    {
        _ldLibraryPath = ldLibraryPath;
        _configured = configured;
        _defaults = defaults;
    }

    /// <summary>This machine's search path: LD_LIBRARY_PATH from the environment and /etc/ld.so.conf.</summary>
    public static LibrarySearch ForThisSystem()
    {
        var env = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        var ldLibraryPath = string.IsNullOrEmpty(env) ? [] : env.Split([':', ';'], StringSplitOptions.RemoveEmptyEntries);
        return new LibrarySearch(ldLibraryPath, ReadLdSoConf("/etc/ld.so.conf", depth: 0), DefaultDirectories);
    }

    /// <summary>Directories listed by an ld.so.conf file, following `include` globs (bounded depth).</summary>
    public static List<string> ReadLdSoConf(string path, int depth)
    {
        var directories = new List<string>();
        if (depth > 4 || !File.Exists(path))
        {
            return directories;
        }
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0)
            {
                continue;
            }
            if (line.StartsWith("include ", StringComparison.Ordinal))
            {
                var pattern = line["include ".Length..].Trim();
                if (!Path.IsPathRooted(pattern))
                {
                    pattern = Path.Combine(Path.GetDirectoryName(path) ?? "/etc", pattern);
                }
                var directory = Path.GetDirectoryName(pattern) ?? "/etc";
                var glob = Path.GetFileName(pattern);
                if (Directory.Exists(directory))
                {
                    foreach (var included in Directory.GetFiles(directory, glob).Order(StringComparer.Ordinal))
                    {
                        directories.AddRange(ReadLdSoConf(included, depth + 1));
                    }
                }
            }
            else if (line.StartsWith('/'))
            {
                directories.Add(line);
            }
        }
        return directories;
    }

    public LibraryResolution Resolve(string name, LoaderContext loader)
    {
        if (name.Contains('/'))
        {
            var expanded = Split(name, loader.ObjectPath).FirstOrDefault() ?? name;
            var direct = Path.IsPathRooted(expanded) ? expanded : Path.GetFullPath(expanded);
            return new LibraryResolution(name, IsX86_64Elf(direct) ? direct : null, []);
        }
        var variants = new List<(IsaLevel, string)>();
        foreach (var directory in SearchDirectories(loader))
        {
            foreach (var (level, sub) in HwcapsDirectories)
            {
                var candidate = Path.Combine(directory, sub, name);
                if (!variants.Any(v => v.Item1 == level) && IsX86_64Elf(candidate))
                {
                    variants.Add((level, candidate));
                }
            }
            var plain = Path.Combine(directory, name);
            if (IsX86_64Elf(plain))
            {
                return new LibraryResolution(name, plain, variants);
            }
        }
        // Only hwcaps copies exist: a CPU below the lowest one cannot load the library at all.
        if (variants.Count > 0)
        {
            var lowest = variants.MinBy(v => v.Item1);
            variants.Remove(lowest);
            return new LibraryResolution(name, lowest.Item2, variants);
        }
        return new LibraryResolution(name, null, []);
    }

    private IEnumerable<string> SearchDirectories(LoaderContext loader)
    {
        if (loader.RunPath is null)
        {
            for (var context = loader; context is not null; context = context.Parent)
            {
                foreach (var directory in Split(context.RPath, context.ObjectPath))
                {
                    yield return directory;
                }
            }
        }
        foreach (var directory in _ldLibraryPath)
        {
            yield return directory;
        }
        foreach (var directory in Split(loader.RunPath, loader.ObjectPath))
        {
            yield return directory;
        }
        foreach (var directory in _configured)
        {
            yield return directory;
        }
        foreach (var directory in _defaults)
        {
            yield return directory;
        }
    }

    /// <summary>Splits an RPATH/RUNPATH and expands $ORIGIN, $LIB and $PLATFORM as glibc does on x86-64 Debian.</summary>
    private static IEnumerable<string> Split(string? path, string objectPath)
    {
        if (string.IsNullOrEmpty(path))
        {
            yield break;
        }
        var origin = Path.GetDirectoryName(Path.GetFullPath(objectPath)) ?? "/";
        foreach (var part in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            yield return part
                .Replace("${ORIGIN}", origin, StringComparison.Ordinal).Replace("$ORIGIN", origin, StringComparison.Ordinal)
                .Replace("${LIB}", "lib/x86_64-linux-gnu", StringComparison.Ordinal).Replace("$LIB", "lib/x86_64-linux-gnu", StringComparison.Ordinal)
                .Replace("${PLATFORM}", "x86_64", StringComparison.Ordinal).Replace("$PLATFORM", "x86_64", StringComparison.Ordinal);
        }
    }

    /// <summary>glibc skips candidates of the wrong class or machine and keeps searching.</summary>
    public static bool IsX86_64Elf(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }
            Span<byte> header = stackalloc byte[20];
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            if (stream.ReadAtLeast(header, 20, throwOnEndOfStream: false) < 20)
            {
                return false;
            }
            return header[0] == 0x7f && header[1] == (byte)'E' && header[2] == (byte)'L' && header[3] == (byte)'F'
                && header[4] == 2 && header[5] == 1 && header[18] == 62 && header[19] == 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
