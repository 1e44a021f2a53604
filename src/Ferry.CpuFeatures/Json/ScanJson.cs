using System.Text.Json;
using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Closure;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Json;

/// <summary>
/// Writes `cpu scan --json` (format 1, documented in docs/cpu-features.md). Feature names are /proc/cpuinfo
/// flags; addresses are hex strings; levels are psABI names ("x86-64-v2").
/// </summary>
public static class ScanJson
{
    public const int Format = 1;
    public const int MaxUnresolvedListed = 100;

    public static void Write(Utf8JsonWriter w, ScanReport report)
    {
        w.WriteStartObject();
        w.WriteString("tool", "ferry cpu scan");
        w.WriteNumber("format", Format);
        w.WriteStartArray("files");
        foreach (var file in report.Files)
        {
            WriteFile(w, file);
        }
        w.WriteEndArray();
        WriteClosure(w, report.Closure);
        w.WriteStartObject("summary");
        w.WriteNumber("inputs", report.Inputs);
        w.WriteNumber("analyzed", report.Files.Count(f => f.Analysis is not null));
        w.WriteNumber("errors", report.Files.Count(f => f.Error is not null));
        w.WriteNumber("input_errors", report.InputErrors);
        w.WriteNumber("skipped_non_elf", report.SkippedNonElf);
        w.WriteNumber("instructions", report.Instructions);
        w.WriteNumber("code_bytes", report.CodeBytes);
        w.WriteNumber("seconds", Math.Round(report.Elapsed.TotalSeconds, 3));
        w.WriteEndObject();
        w.WriteEndObject();
    }

    public static string RoleName(FileRole role) => role switch
    {
        FileRole.Input => "input",
        FileRole.Dependency => "dependency",
        _ => "hwcaps-variant",
    };

    public static string KindName(ElfFileKind kind) => kind switch
    {
        ElfFileKind.Executable => "executable",
        ElfFileKind.PieExecutable => "pie-executable",
        _ => "shared-object",
    };

    private static void WriteFile(Utf8JsonWriter w, ScannedFile file)
    {
        w.WriteStartObject();
        w.WriteString("path", file.Path);
        w.WriteString("role", RoleName(file.Role));
        if (file.HwcapsLevel is { } hwcaps)
        {
            w.WriteString("hwcaps_level", hwcaps.ToPsAbiName());
        }
        if (file.Error is { } error)
        {
            w.WriteStartObject("error");
            w.WriteString("kind", error.KindName);
            w.WriteString("message", error.Message);
            w.WriteEndObject();
            w.WriteEndObject();
            return;
        }
        var a = file.Analysis!;
        w.WriteString("kind", KindName(a.Kind));
        WriteFeatures(w, "required", a.Required);
        WriteFeatures(w, "gated", a.Gated);
        WriteFeatures(w, "baseline", a.BaselineUsed);
        WriteFeatures(w, "unreached", a.Unreached);
        w.WriteString("level", a.Level.ToPsAbiName());
        WriteLevel(w, "note_level", a.NoteNeeded);
        WriteLevel(w, "note_used_level", a.NoteUsed);
        w.WriteStartObject("note_check");
        w.WriteString("status", a.NoteCheck.Status);
        w.WriteString("detail", a.NoteCheck.Detail);
        w.WriteEndObject();
        w.WriteStartObject("functions");
        foreach (var (feature, location) in a.Examples.OrderBy(kv => kv.Key))
        {
            w.WriteStartObject(CpuFeatureInfo.Name(feature));
            w.WriteString("function", location.Function);
            w.WriteString("address", $"0x{location.Address:x}");
            w.WriteBoolean("gated", location.Gated);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteStartArray("needed");
        foreach (var name in a.Needed)
        {
            w.WriteStringValue(name);
        }
        w.WriteEndArray();
        w.WriteStartObject("resolved");
        foreach (var (name, path) in file.Resolved)
        {
            if (path is null)
            {
                w.WriteNull(name);
            }
            else
            {
                w.WriteString(name, path);
            }
        }
        w.WriteEndObject();
        w.WriteStartObject("stats");
        w.WriteNumber("functions", a.Stats.Functions);
        w.WriteNumber("reachable_functions", a.Stats.ReachableFunctions);
        w.WriteNumber("feature_test_functions", a.Stats.FeatureTestFunctions);
        w.WriteNumber("instructions", a.Stats.Instructions);
        w.WriteNumber("code_bytes", a.Stats.CodeBytes);
        w.WriteNumber("covered_bytes", a.Stats.CoveredBytes);
        w.WriteBoolean("truncated", a.Stats.Truncated);
        w.WriteEndObject();
        w.WriteStartArray("warnings");
        foreach (var warning in a.Warnings)
        {
            w.WriteStringValue(warning);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteClosure(Utf8JsonWriter w, ClosureResult c)
    {
        w.WriteStartObject("closure");
        w.WriteString("mode", c.Mode);
        WriteFeatures(w, "required", c.Required);
        WriteFeatures(w, "gated", c.Gated);
        WriteFeatures(w, "baseline", c.BaselineUsed);
        w.WriteString("level", c.Level.ToPsAbiName());
        w.WriteStartObject("functions");
        foreach (var (feature, (path, location)) in c.Examples.OrderBy(kv => kv.Key))
        {
            w.WriteStartObject(CpuFeatureInfo.Name(feature));
            w.WriteString("file", path);
            w.WriteString("function", location.Function);
            w.WriteString("address", $"0x{location.Address:x}");
            w.WriteBoolean("gated", location.Gated);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteStartArray("files");
        foreach (var path in c.Files)
        {
            w.WriteStringValue(path);
        }
        w.WriteEndArray();
        w.WriteStartArray("missing_libraries");
        foreach (var name in c.MissingLibraries)
        {
            w.WriteStringValue(name);
        }
        w.WriteEndArray();
        w.WriteNumber("unresolved_import_count", c.UnresolvedImports.Count);
        w.WriteStartArray("unresolved_imports");
        foreach (var name in c.UnresolvedImports.Take(MaxUnresolvedListed))
        {
            w.WriteStringValue(name);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteFeatures(Utf8JsonWriter w, string name, FeatureSet features)
    {
        w.WriteStartArray(name);
        foreach (var feature in features.Members())
        {
            w.WriteStringValue(CpuFeatureInfo.Name(feature));
        }
        w.WriteEndArray();
    }

    private static void WriteLevel(Utf8JsonWriter w, string name, IsaLevel? level)
    {
        if (level is { } l)
        {
            w.WriteString(name, l.ToPsAbiName());
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
