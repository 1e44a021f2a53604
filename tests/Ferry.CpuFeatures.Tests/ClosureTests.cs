using System.Text.Json;
using Ferry.CpuFeatures.Closure;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Json;

namespace Ferry.CpuFeatures.Tests;

/// <summary>DT_NEEDED closures: loader search path, glibc-hwcaps, the cross-file import walk and the JSON shape.</summary>
[Collection(CompiledProgramsCollection.Name)]
public sealed class ClosureTests(TestPrograms programs)
{
    [Fact]
    public void The_closure_follows_runpath_and_counts_hwcaps_copies_as_gated()
    {
        var report = new ScanSession(new ScanOptions()).Run([programs.Path("uses_libscale")]);
        var variant = report.Files.Single(f => f.Role == FileRole.HwcapsVariant);
        Assert.Equal(IsaLevel.V3, variant.HwcapsLevel);
        Assert.Contains("glibc-hwcaps/x86-64-v3/libscale.so", variant.Path, StringComparison.Ordinal);
        Assert.True(variant.Analysis!.Required.Contains(CpuFeature.Avx2), "the v3 copy itself needs AVX2");
        Assert.Contains(report.Files, f => f.Role == FileRole.Dependency && f.Path.EndsWith("lib/libscale.so", StringComparison.Ordinal));
        Assert.Contains(report.Files, f => f.Path.EndsWith("libc.so.6", StringComparison.Ordinal));
        Assert.Equal("imports", report.Closure.Mode);
        Assert.False(report.Closure.Required.Contains(CpuFeature.Avx2), $"closure required: {report.Closure.Required}");
        Assert.True(report.Closure.Gated.Contains(CpuFeature.Avx2));
        Assert.Equal(IsaLevel.V1, report.Closure.Level);
    }

    [Fact]
    public void Library_exports_the_program_never_imports_are_not_needs()
    {
        // libc exports pkey_set (WRPKRU, unconditional), so libc on its own "requires" PKU; a program that never
        // calls it does not.
        var report = new ScanSession(new ScanOptions()).Run([programs.Path("avx2_main")]);
        var libc = report.Files.Single(f => f.Path.EndsWith("libc.so.6", StringComparison.Ordinal)).Analysis!;
        Assert.True(libc.Required.Contains(CpuFeature.Pku));
        Assert.False(report.Closure.Required.Contains(CpuFeature.Pku), $"closure required: {report.Closure.Required}");
        Assert.True(report.Closure.Required.Contains(CpuFeature.Avx2));
        Assert.Equal(IsaLevel.V3, report.Closure.Level);
    }

    [Fact]
    public void Union_mode_is_used_for_closures_too_big_to_walk()
    {
        var report = new ScanSession(new ScanOptions { PreciseClosureLimit = 1 }).Run([programs.Path("avx2_main")]);
        Assert.Equal("union", report.Closure.Mode);
        Assert.True(report.Closure.Required.Contains(CpuFeature.Pku), "union mode counts every export");
    }

    [Fact]
    public void Scan_json_has_the_documented_shape()
    {
        var report = new ScanSession(new ScanOptions()).Run([programs.Path("avx512_gated")]);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            ScanJson.Write(writer, report);
        }
        using var json = JsonDocument.Parse(stream.ToArray());
        var file = json.RootElement.GetProperty("files")[0];
        Assert.Equal(programs.Path("avx512_gated"), file.GetProperty("path").GetString());
        Assert.Equal(0, file.GetProperty("required").GetArrayLength());
        Assert.Contains("avx512f", file.GetProperty("gated").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("x86-64-v1", file.GetProperty("level").GetString());
        Assert.Equal("x86-64-v1", file.GetProperty("note_level").GetString());
        var example = file.GetProperty("functions").GetProperty("avx512f");
        Assert.StartsWith("sum512", example.GetProperty("function").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("0x", example.GetProperty("address").GetString(), StringComparison.Ordinal);
        var closure = json.RootElement.GetProperty("closure");
        Assert.Equal("x86-64-v1", closure.GetProperty("level").GetString());
        Assert.Contains("avx512f", closure.GetProperty("gated").EnumerateArray().Select(e => e.GetString()));
        Assert.True(closure.GetProperty("files").GetArrayLength() >= 3);
    }

    [Fact]
    public void Directories_are_scanned_recursively_skipping_non_elf_files()
    {
        var dir = programs.Path("tree");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.Copy(programs.Path("ifunc"), Path.Combine(dir, "sub", "ifunc"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "README"), "not a program");
        var report = new ScanSession(new ScanOptions { FollowNeeded = false }).Run([dir]);
        Assert.Equal(1, report.SkippedNonElf);
        Assert.Single(report.Files);
        Assert.True(report.Closure.Gated.Contains(CpuFeature.Avx2));
    }
}
