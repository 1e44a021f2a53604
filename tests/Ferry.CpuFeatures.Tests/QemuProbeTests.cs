using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;
using Ferry.CpuFeatures.Probe;

namespace Ferry.CpuFeatures.Tests;

/// <summary>Disable-and-try under Debian's qemu-user (installed by ./setup; TCG has AVX2 but no AVX-512).</summary>
[Collection(CompiledProgramsCollection.Name)]
public sealed class QemuProbeTests(TestPrograms programs)
{
    private static readonly CpuModelCatalog Catalog = CpuModelCatalog.Default;
    private readonly QemuUser _qemu = new();

    private string Spec(string model) => _qemu.CpuSpec(Catalog, Catalog.Find(model)!, [], out _);

    [Fact]
    public void Avx2_code_on_nehalem_is_reported_as_an_illegal_instruction()
    {
        var outcome = new ProgramProbe(_qemu).Run(Spec("Nehalem"), [programs.Path("avx2_main")], TimeSpan.FromSeconds(60));
        Assert.False(outcome.Succeeded);
        Assert.Equal(4, outcome.Signal);
        var illegal = Assert.IsType<IllegalInstruction>(outcome.Illegal);
        Assert.Equal(programs.Path("avx2_main"), illegal.File);
        Assert.True(illegal.Needs.Contains(CpuFeature.Avx) || illegal.Needs.Contains(CpuFeature.Avx2), illegal.Disassembly);
        Assert.StartsWith("v", illegal.Disassembly, StringComparison.Ordinal);
        Assert.True(illegal.Function is { } f && (f.StartsWith("main", StringComparison.Ordinal) || f.StartsWith("sum_scaled", StringComparison.Ordinal)), illegal.Function);
    }

    [Fact]
    public void The_same_program_runs_on_haswell()
    {
        var outcome = new ProgramProbe(_qemu).Run(Spec("Haswell-noTSX"), [programs.Path("avx2_main")], TimeSpan.FromSeconds(60));
        Assert.True(outcome.Succeeded, outcome.StandardError);
        Assert.Null(outcome.Illegal);
        Assert.Equal("98688", outcome.StandardOutput.Trim());
    }

    [Fact]
    public void Tcg_drops_avx512_so_the_gated_program_takes_its_fallback()
    {
        var outcome = new ProgramProbe(_qemu).Run(Spec("Icelake-Server"), [programs.Path("avx512_gated")], TimeSpan.FromSeconds(60));
        Assert.True(outcome.Succeeded);
        Assert.Contains("avx512f", outcome.TcgDropped);
    }

    [Fact]
    public void Minimize_finds_popcnt_and_bmi2_by_delta_debugging()
    {
        var result = new FeatureMinimizer(_qemu, Catalog).Minimize(Catalog.Find("Skylake-Client-v4")!, [programs.Path("popcnt_bmi2")],
            TimeSpan.FromSeconds(60), sameOutput: true, log: null);
        Assert.Null(result.Failure);
        Assert.Equal(["bmi2", "popcnt"], result.Kept.Order());
        Assert.True(result.Runs < 60, $"{result.Runs} runs for {result.Candidates.Count} candidates");
        Assert.DoesNotContain(result.Candidates, f => f.StartsWith("avx512", StringComparison.Ordinal));
    }
}
