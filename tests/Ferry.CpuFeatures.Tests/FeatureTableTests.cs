using Ferry.CpuFeatures.Features;
using Iced.Intel;

namespace Ferry.CpuFeatures.Tests;

/// <summary>The Iced → /proc/cpuinfo mapping and the psABI level arithmetic.</summary>
public sealed class FeatureTableTests
{
    private static FeatureSet Of(Code code) => IcedFeatureMap.For(code);

    [Fact]
    public void Every_feature_has_a_unique_cpuinfo_name_and_fits_the_set()
    {
        Assert.True((int)CpuFeature.Count <= 128);
        var names = Enumerable.Range(1, (int)CpuFeature.Count - 1).Select(i => CpuFeatureInfo.Name((CpuFeature)i)).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.All(names, n => Assert.True(CpuFeatureInfo.TryParse(n, out _)));
    }

    [Fact]
    public void Cpuinfo_spellings_are_used()
    {
        Assert.Equal(FeatureSet.Of(CpuFeature.Pni), Of(Code.Haddps_xmm_xmmm128));
        Assert.Equal("pni", CpuFeatureInfo.Name(CpuFeature.Pni));
        Assert.Equal(FeatureSet.Of(CpuFeature.Abm), Of(Code.Lzcnt_r32_rm32));
        Assert.Equal("abm", CpuFeatureInfo.Name(CpuFeature.Abm));
        Assert.Equal("sha_ni", CpuFeatureInfo.Name(IcedFeatureMap.Map(CpuidFeature.SHA)));
        Assert.Equal(FeatureSet.Of(CpuFeature.LahfLm), Of(Code.Lahf));
    }

    [Fact]
    public void Instructions_that_run_everywhere_need_nothing()
    {
        Assert.True(Of(Code.Tzcnt_r32_rm32).IsEmpty, "TZCNT runs as BSF without BMI1");
        Assert.True(Of(Code.Endbr64).IsEmpty, "ENDBR64 is a NOP without CET");
        Assert.True(Of(Code.Nopd).IsEmpty);
    }

    [Fact]
    public void Evex_forms_need_avx512f_too()
    {
        var f = Of(Code.EVEX_Vmovdqu8_xmm_k1z_xmmm128);
        Assert.True(f.Contains(CpuFeature.Avx512F) && f.Contains(CpuFeature.Avx512Bw) && f.Contains(CpuFeature.Avx512Vl));
    }

    [Theory]
    [InlineData(CpuFeature.Sse2, IsaLevel.V1)]
    [InlineData(CpuFeature.Popcnt, IsaLevel.V2)]
    [InlineData(CpuFeature.Avx2, IsaLevel.V3)]
    [InlineData(CpuFeature.Movbe, IsaLevel.V3)]
    [InlineData(CpuFeature.Avx512Vl, IsaLevel.V4)]
    [InlineData(CpuFeature.Aes, IsaLevel.V1)]
    public void Implied_level_is_the_highest_level_of_any_need(CpuFeature feature, IsaLevel level) =>
        Assert.Equal(level, CpuFeatureInfo.ImpliedLevel(FeatureSet.Of(feature)));

    [Fact]
    public void A_cpu_supports_a_level_only_with_all_its_features()
    {
        var v2 = CpuFeatureInfo.Baseline.Names().Concat(CpuFeatureInfo.V2.Names()).ToHashSet();
        Assert.Equal(IsaLevel.V2, CpuFeatureInfo.SupportedLevel(v2));
        v2.Remove("popcnt");
        Assert.Equal(IsaLevel.V1, CpuFeatureInfo.SupportedLevel(v2));
    }
}
