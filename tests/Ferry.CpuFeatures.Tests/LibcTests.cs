using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Tests;

/// <summary>glibc dispatches its AVX-512 string functions through IFUNC resolvers: present, but never required.</summary>
public sealed class LibcTests
{
    private const string Libc = "/lib/x86_64-linux-gnu/libc.so.6";

    [Fact]
    public void Libc_requires_a_level_well_below_v4_although_its_text_contains_avx512()
    {
        using var image = ElfImage.Open(Libc);
        var a = BinaryAnalyzer.Analyze(Libc, ElfFile.Parse(image));
        Assert.True(a.Level <= IsaLevel.V2, $"level {a.Level}, required {a.Required}");
        Assert.True(a.Gated.Contains(CpuFeature.Avx512F) && a.Gated.Contains(CpuFeature.Avx512Bw), $"gated: {a.Gated}");
        Assert.False(a.Required.Overlaps(CpuFeatureInfo.Avx512Family | CpuFeatureInfo.V3));
        Assert.True(a.Stats.FeatureTestFunctions > 50, "the IFUNC resolvers are feature tests");
    }
}
