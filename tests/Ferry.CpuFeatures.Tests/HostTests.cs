using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Host;
using Ferry.CpuFeatures.Models;

namespace Ferry.CpuFeatures.Tests;

public sealed class HostTests
{
    [Fact]
    public void Cpuid_names_this_hosts_features_like_proc_cpuinfo()
    {
        var cpu = HostCpu.Read(CpuModelCatalog.Default);
        Assert.False(string.IsNullOrWhiteSpace(cpu.Vendor));
        Assert.Contains("sse2", cpu.Features);
        Assert.Contains("lm", cpu.Features);
        Assert.True(cpu.Level >= IsaLevel.V1);
        // Cross-check against the kernel's view where both name the flag.
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
            .Split(':')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        foreach (var f in (string[])["sse4_2", "avx2", "bmi2", "popcnt", "avx512f", "sha_ni", "pni"])
        {
            Assert.Equal(flags.Contains(f), cpu.Features.Contains(f));
        }
    }
}
