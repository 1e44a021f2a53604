using System.Collections.Frozen;
using System.Text.Json;

namespace Ferry.CpuFeatures.Models;

/// <summary>One version of a QEMU named CPU model, features spelled as /proc/cpuinfo flags.</summary>
public sealed record QemuCpuModel(
    string Name, string Base, int Version, string? Alias, string? Vendor, int? Family, int? ModelNumber, int? Stepping,
    string ModelId, IReadOnlySet<string> Features)
{
    /// <summary>64-bit models only: the 32-bit ones (486, pentium, qemu32, …) cannot run x86-64 code at all.</summary>
    public bool Is64Bit => Features.Contains("lm");

    /// <summary>The name libvirt's cpu_map knows: the alias (Haswell-noTSX) or, for v1, the base name.</summary>
    public string LibvirtName => Alias ?? (Version == 1 ? Base : Name);
}

/// <summary>One CPUID register QEMU names bit by bit (leaf, subleaf, register → 32 flag names or nulls).</summary>
public sealed record CpuidFeatureWord(string Word, uint Leaf, uint Subleaf, string Register, IReadOnlyList<string?> Bits);

/// <summary>
/// QEMU's x86 CPU models and CPUID feature-word layout, loaded from the embedded data file
/// Data/qemu-cpu-models.json (generated from QEMU's target/i386/cpu.c; the file names the version).
/// </summary>
public sealed class CpuModelCatalog
{
    private static readonly Lazy<CpuModelCatalog> Embedded = new(LoadEmbedded);
    private readonly FrozenDictionary<string, QemuCpuModel> _byName;
    private readonly FrozenDictionary<string, string> _qemuNames;

    private CpuModelCatalog(string source, IReadOnlyList<QemuCpuModel> models, IReadOnlyList<CpuidFeatureWord> words, Dictionary<string, string> qemuNames)
    {
        Source = source;
        Models = models;
        FeatureWords = words;
        _qemuNames = qemuNames.ToFrozenDictionary(StringComparer.Ordinal);
        var byName = new Dictionary<string, QemuCpuModel>(StringComparer.OrdinalIgnoreCase);
        foreach (var model in models)
        {
            byName[model.Name] = model;
            if (model.Alias is not null)
            {
                byName.TryAdd(model.Alias, model);
            }
            if (model.Version == 1)
            {
                byName.TryAdd(model.Base, model);
            }
        }
        _byName = byName.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        KnownFeatures = words.SelectMany(w => w.Bits).OfType<string>().ToFrozenSet(StringComparer.Ordinal);
    }

    public static CpuModelCatalog Default => Embedded.Value;

    /// <summary>Where the data came from, e.g. "QEMU 10.0.13 (Debian qemu 1:10.0.13+ds-0+deb13u1 (trixie))".</summary>
    public string Source { get; }

    public IReadOnlyList<QemuCpuModel> Models { get; }
    public IReadOnlyList<CpuidFeatureWord> FeatureWords { get; }

    /// <summary>Every flag a CPUID feature word names: the vocabulary hosts and models are compared in.</summary>
    public IReadOnlySet<string> KnownFeatures { get; }

    /// <summary>By versioned name (Haswell-v2), alias (Haswell-noTSX) or base name (Haswell = v1); case-insensitive.</summary>
    public QemuCpuModel? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>QEMU's spelling of a /proc/cpuinfo flag (sse4_1 → sse4.1), for -cpu strings.</summary>
    public string QemuName(string flag) => _qemuNames.GetValueOrDefault(flag, flag);

    public static CpuModelCatalog Parse(Stream json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var src = root.GetProperty("source");
        string source = $"{src.GetProperty("project").GetString()} {src.GetProperty("version").GetString()} ({src.GetProperty("package").GetString()})";
        var words = new List<CpuidFeatureWord>();
        foreach (var w in root.GetProperty("feature_words").EnumerateArray())
        {
            var bits = w.GetProperty("bits").EnumerateArray().Select(b => b.ValueKind == JsonValueKind.Null ? null : b.GetString()).ToList();
            words.Add(new CpuidFeatureWord(w.GetProperty("word").GetString()!, w.GetProperty("leaf").GetUInt32(),
                w.GetProperty("subleaf").GetUInt32(), w.GetProperty("register").GetString()!, bits));
        }
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in root.GetProperty("qemu_names").EnumerateObject())
        {
            names[p.Name] = p.Value.GetString()!;
        }
        var models = new List<QemuCpuModel>();
        foreach (var m in root.GetProperty("models").EnumerateArray())
        {
            models.Add(new QemuCpuModel(
                m.GetProperty("name").GetString()!,
                m.GetProperty("base").GetString()!,
                m.GetProperty("version").GetInt32(),
                m.GetProperty("alias").ValueKind == JsonValueKind.Null ? null : m.GetProperty("alias").GetString(),
                m.GetProperty("vendor").GetString(),
                Int(m, "family"), Int(m, "model"), Int(m, "stepping"),
                m.GetProperty("model_id").GetString() ?? "",
                m.GetProperty("features").EnumerateArray().Select(f => f.GetString()!).ToFrozenSet(StringComparer.Ordinal)));
        }
        return new CpuModelCatalog(source, models, words, names);
    }

    private static int? Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    private static CpuModelCatalog LoadEmbedded()
    {
        using var stream = typeof(CpuModelCatalog).Assembly.GetManifestResourceStream("Ferry.CpuFeatures.qemu-cpu-models.json")
            ?? throw new InvalidOperationException("embedded resource qemu-cpu-models.json is missing from the build");
        return Parse(stream);
    }
}
