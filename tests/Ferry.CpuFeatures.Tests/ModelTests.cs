using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;

namespace Ferry.CpuFeatures.Tests;

/// <summary>QEMU model data, model choice and host compatibility.</summary>
public sealed class ModelTests
{
    private static readonly CpuModelCatalog Catalog = CpuModelCatalog.Default;

    private static WorkloadNeeds Needs(params string[] required) =>
        new("test", required.Concat(CpuFeatureInfo.Baseline.Names()).ToHashSet(), new HashSet<string>(), IsaLevel.None);

    private static HostProfile Host(string model) => HostProfile.Load($"qemu:{model}", Catalog);

    [Fact]
    public void The_catalog_names_its_source_and_spans_the_generations()
    {
        Assert.Contains("QEMU 10.0.13", Catalog.Source, StringComparison.Ordinal);
        foreach (var name in (string[])["Nehalem", "Westmere", "SandyBridge", "Haswell-noTSX", "Skylake-Client-v4", "Cascadelake-Server",
            "Icelake-Server-v7", "SapphireRapids-v3", "EPYC", "EPYC-Rome-v4", "EPYC-Milan-v2", "EPYC-Genoa"])
        {
            Assert.NotNull(Catalog.Find(name));
        }
        Assert.DoesNotContain("avx", Catalog.Find("Nehalem")!.Features);
        Assert.Contains("avx2", Catalog.Find("Haswell")!.Features);
        Assert.Contains("avx512f", Catalog.Find("Cascadelake-Server")!.Features);
        Assert.Contains("amx_tile", Catalog.Find("SapphireRapids")!.Features);
        Assert.DoesNotContain("hle", Catalog.Find("Haswell-noTSX")!.Features);
        Assert.Equal(IsaLevel.V2, CpuFeatureInfo.SupportedLevel(Catalog.Find("Nehalem")!.Features));
        Assert.Equal(IsaLevel.V4, CpuFeatureInfo.SupportedLevel(Catalog.Find("Icelake-Server")!.Features));
        Assert.Equal("sse4.1", Catalog.QemuName("sse4_1"));
    }

    [Fact]
    public void An_icelake_vm_that_needs_only_avx2_can_move_to_cascadelake()
    {
        // Harvester #5603: started on Icelake, the VM could not move to Cascadelake although it did not use
        // Icelake's features. Presenting what it needs instead makes both hosts fit.
        var hosts = new[] { Host("Icelake-Server"), Host("Cascadelake-Server") };
        var choice = ModelSelector.Choose(Catalog, Needs("avx2", "bmi2", "fma"), hosts);
        Assert.True(choice.Fits);
        Assert.Empty(choice.Add);
        Assert.All(hosts, h => Assert.True(choice.Model.Features.Except(choice.Remove).All(h.Features.Contains)));
        Assert.Contains("avx2", choice.Model.Features);
        Assert.DoesNotContain("avx512f", choice.Model.Features.Except(choice.Remove));
        Assert.All(Compatibility.Check(Needs("avx2", "bmi2", "fma"), hosts), v => Assert.True(v.CanReceive));
    }

    [Fact]
    public void The_lowest_covering_model_is_chosen()
    {
        var choice = ModelSelector.Choose(Catalog, Needs("popcnt", "sse4_2"), []);
        Assert.Empty(choice.Add);
        Assert.DoesNotContain("avx", choice.Model.Features);
        Assert.Equal(IsaLevel.V2, CpuFeatureInfo.SupportedLevel(choice.Model.Features));
    }

    [Fact]
    public void Features_a_host_lacks_are_removed_and_missing_needs_added()
    {
        var host = new HostProfile("odd", "test", "GenuineIntel",
            Catalog.Find("Haswell-noTSX")!.Features.Where(f => f != "movbe").Append("sha_ni").ToHashSet());
        var choice = ModelSelector.Choose(Catalog, Needs("avx2", "sha_ni"), [host]);
        Assert.True(choice.Fits);
        Assert.DoesNotContain("movbe", choice.Model.Features.Except(choice.Remove).Concat(choice.Add));
        Assert.Contains("sha_ni", choice.Model.Features.Concat(choice.Add));
        var qemu = ModelSelector.QemuCpuArgument(Catalog, choice);
        Assert.StartsWith(choice.Model.Name, qemu, StringComparison.Ordinal);
        Assert.Contains("<cpu mode='custom'", ModelSelector.LibvirtXml(Catalog, choice), StringComparison.Ordinal);
    }

    [Fact]
    public void Compat_names_what_each_host_lacks()
    {
        var verdicts = Compatibility.Check(Needs("avx512f", "avx2"), [Host("Haswell"), Host("Skylake-Server")]);
        Assert.False(verdicts[0].CanReceive);
        Assert.Equal(["avx512f"], verdicts[0].Missing);
        Assert.True(verdicts[1].CanReceive);
        var unsatisfiable = ModelSelector.Choose(Catalog, Needs("avx512f"), [Host("Haswell")]);
        Assert.False(unsatisfiable.Fits);
        Assert.Equal(["avx512f"], unsatisfiable.Unsatisfiable);
    }

    [Fact]
    public void Bad_host_specs_are_input_errors()
    {
        Assert.Throws<InputException>(() => HostProfile.Load("qemu:NoSuchCpu", Catalog));
        Assert.Throws<InputException>(() => HostProfile.Load("/no/such/host.json", Catalog));
        Assert.Throws<InputException>(() => WorkloadNeeds.Load("/no/such/scan.json"));
    }
}
