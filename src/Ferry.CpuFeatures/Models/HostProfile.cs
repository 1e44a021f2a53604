using System.Text.Json;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Models;

/// <summary>A migration target: a name and the CPU features it offers (from `cpu host --json`, or a QEMU model).</summary>
public sealed record HostProfile(string Name, string Source, string? Vendor, IReadOnlySet<string> Features)
{
    public IsaLevel Level => CpuFeatureInfo.SupportedLevel(Features);

    /// <summary>
    /// A host spec is a path to `cpu host --json` output, or `qemu:MODEL` to stand for a machine of that QEMU
    /// model (handy for fleets described by model, and for trying things on one machine).
    /// </summary>
    public static HostProfile Load(string spec, CpuModelCatalog catalog)
    {
        if (spec.StartsWith("qemu:", StringComparison.Ordinal))
        {
            var name = spec["qemu:".Length..];
            var model = catalog.Find(name) ?? throw new InputException($"unknown QEMU CPU model '{name}' (see `ferry cpu model --list`)");
            return new HostProfile(model.Name, $"QEMU model {model.Name}", model.Vendor, model.Features);
        }
        JsonDocument document;
        try
        {
            using var stream = File.OpenRead(spec);
            document = JsonDocument.Parse(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new InputException($"{spec}: cannot read host JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("features", out var features) || features.ValueKind != JsonValueKind.Array)
            {
                throw new InputException($"{spec}: not `ferry cpu host --json` output (no \"features\" array)");
            }
            var set = features.EnumerateArray().Where(f => f.ValueKind == JsonValueKind.String).Select(f => f.GetString()!)
                .ToHashSet(StringComparer.Ordinal);
            string name = root.TryGetProperty("hostname", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString()! : Path.GetFileNameWithoutExtension(spec);
            string? vendor = root.TryGetProperty("vendor", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            return new HostProfile(name, spec, vendor, set);
        }
    }
}

/// <summary>What a scanned workload needs, read from `cpu scan --json` output (its closure).</summary>
public sealed record WorkloadNeeds(string Source, IReadOnlySet<string> Required, IReadOnlySet<string> Gated, IsaLevel Level)
{
    public static WorkloadNeeds Load(string path)
    {
        JsonDocument document;
        try
        {
            using var stream = File.OpenRead(path);
            document = JsonDocument.Parse(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new InputException($"{path}: cannot read scan JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("closure", out var closure) || closure.ValueKind != JsonValueKind.Object)
            {
                throw new InputException($"{path}: not `ferry cpu scan --json` output (no \"closure\" object)");
            }
            // Baseline features are needs too (every x86-64 host has them, but a host file might not say so).
            var required = Names(closure, "required").Concat(Names(closure, "baseline")).ToHashSet(StringComparer.Ordinal);
            var gated = Names(closure, "gated").ToHashSet(StringComparer.Ordinal);
            IsaLevelNames.TryParse(closure.TryGetProperty("level", out var l) ? l.GetString() : null, out var level);
            return new WorkloadNeeds(path, required, gated, level);
        }
    }

    private static IEnumerable<string> Names(JsonElement e, string property) =>
        e.TryGetProperty(property, out var array) && array.ValueKind == JsonValueKind.Array
            ? array.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!)
            : [];
}

/// <summary>A bad input file or argument for model/compat: reported as a usage error, not a crash.</summary>
public sealed class InputException(string message) : Exception(message);
