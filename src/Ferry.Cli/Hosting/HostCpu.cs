using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Ferry.Cli.Hosting;

/// <summary>A one-line description of the CPU features the .NET runtime uses here (for snapshot metadata).</summary>
public static class HostCpu
{
    public static string Describe()
    {
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        if (RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.X86)) return arch;
        return $"{arch} sse4.2={Flag(Sse42.IsSupported)} avx={Flag(Avx.IsSupported)} avx2={Flag(Avx2.IsSupported)} avx512f={Flag(Avx512F.IsSupported)}";
    }

    private static int Flag(bool b) => b ? 1 : 0;
}
