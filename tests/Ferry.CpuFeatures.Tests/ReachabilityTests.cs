using Ferry.CpuFeatures.Features;

namespace Ferry.CpuFeatures.Tests;

/// <summary>The required/gated split on programs compiled at test time.</summary>
[Collection(CompiledProgramsCollection.Name)]
public sealed class ReachabilityTests(TestPrograms programs)
{
    private static FeatureSet Set(params CpuFeature[] features) => FeatureSet.Of(features);

    [Fact]
    public void Avx2_on_the_main_path_is_required()
    {
        var a = programs.Analyze("avx2_main");
        Assert.True(a.Required.Contains(CpuFeature.Avx2), $"required: {a.Required}");
        Assert.Equal(IsaLevel.V3, a.Level);
        Assert.True(a.Examples[CpuFeature.Avx2].Function.StartsWith("sum_scaled", StringComparison.Ordinal)
            || a.Examples[CpuFeature.Avx2].Function.StartsWith("main", StringComparison.Ordinal), a.Examples[CpuFeature.Avx2].Function);
        Assert.False(a.Examples[CpuFeature.Avx2].Gated);
    }

    [Theory]
    [InlineData("avx512_gated")]
    [InlineData("avx512_gated_O0")]
    [InlineData("avx512_gated_clang")]
    [InlineData("avx512_gated_stripped")]
    public void Avx512_behind_builtin_cpu_supports_is_gated_not_required(string program)
    {
        var a = programs.Analyze(program);
        Assert.True(a.Gated.Contains(CpuFeature.Avx512F), $"gated: {a.Gated}");
        Assert.False(a.Required.Overlaps(CpuFeatureInfo.Avx512Family), $"required: {a.Required}");
        Assert.Equal(IsaLevel.V1, a.Level);
        Assert.True(a.Examples[CpuFeature.Avx512F].Gated);
    }

    [Fact]
    public void Ifunc_dispatched_avx2_is_gated()
    {
        var a = programs.Analyze("ifunc");
        Assert.True(a.Gated.Contains(CpuFeature.Avx2), $"gated: {a.Gated}");
        Assert.False(a.Required.Contains(CpuFeature.Avx2), $"required: {a.Required}");
        Assert.Contains("add_avx2", a.Examples[CpuFeature.Avx2].Function, StringComparison.Ordinal);
    }

    [Fact]
    public void A_jump_table_case_in_a_stripped_binary_is_reached()
    {
        var a = programs.Analyze("jump_table");
        Assert.True(a.Required.Contains(CpuFeature.Avx2), $"required: {a.Required}; unreached: {a.Unreached}");
    }

    [Fact]
    public void Instruction_bytes_kept_as_data_in_text_are_not_needs()
    {
        var a = programs.Analyze("data_in_text");
        Assert.False((a.Required | a.Gated).Overlaps(CpuFeatureInfo.Avx512Family | Set(CpuFeature.Avx2)), $"required {a.Required}, gated {a.Gated}");
        Assert.Equal(IsaLevel.V1, a.Level);
    }

    [Fact]
    public void A_stale_isa_note_is_flagged()
    {
        // GCC's note says baseline, the code needs AVX2.
        var a = programs.Analyze("avx2_main");
        Assert.Equal(IsaLevel.V1, a.NoteNeeded);
        Assert.Equal("stale", a.NoteCheck.Status);
    }

    [Fact]
    public void An_over_marked_isa_note_is_flagged()
    {
        var a = programs.Analyze("baseline_v3note");
        Assert.Equal(IsaLevel.V3, a.NoteNeeded);
        Assert.Equal(IsaLevel.V1, a.Level);
        Assert.Equal("over-marked", a.NoteCheck.Status);
    }

    [Fact]
    public void Popcnt_and_bmi2_code_needs_exactly_those()
    {
        var a = programs.Analyze("popcnt_bmi2");
        Assert.Equal(Set(CpuFeature.Popcnt, CpuFeature.Bmi2), a.Required & (CpuFeatureInfo.V2 | CpuFeatureInfo.V3));
    }
}
