using System.Runtime.Intrinsics.X86;
using System.Text;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;

namespace Ferry.CpuFeatures.Host;

/// <summary>This machine's CPU as CPUID describes it, features named like /proc/cpuinfo.</summary>
public sealed record HostCpuInfo(
    string Vendor, int Family, int Model, int Stepping, string Brand, IReadOnlySet<string> Features,
    IReadOnlyList<string> OsDisabled, IsaLevel Level);

/// <summary>
/// Reads CPUID through .NET's X86Base.CpuId and names the bits with the feature-word table of the QEMU model
/// data (so host and model features are compared in one vocabulary).
/// </summary>
public static class HostCpu
{
    /// <summary>Features whose register state the OS must enable in XCR0; gone when it did not.</summary>
    private static readonly string[] AvxState = ["avx", "avx2", "fma", "f16c", "vaes", "vpclmulqdq", "avx_vnni", "avx_ifma",
        "avx_vnni_int8", "avx_vnni_int16", "avx_ne_convert"];

    public static bool IsSupported => X86Base.IsSupported;

    public static HostCpuInfo Read(CpuModelCatalog catalog)
    {
        if (!X86Base.IsSupported)
        {
            throw new PlatformNotSupportedException("CPUID is only available on x86 hosts");
        }
        var (maxBasic, vb, vc, vd) = X86Base.CpuId(0, 0);
        string vendor = Vendor(vb, vd, vc);
        uint maxExtended = (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax;
        uint maxCentaur = vendor is "CentaurHauls" or "  Shanghai  " ? (uint)X86Base.CpuId(unchecked((int)0xC0000000), 0).Eax : 0;

        var features = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var word in catalog.FeatureWords)
        {
            bool available = word.Leaf >= 0xC0000000 ? word.Leaf <= maxCentaur
                : word.Leaf >= 0x80000000 ? word.Leaf <= maxExtended
                : word.Leaf <= (uint)maxBasic;
            if (!available)
            {
                continue;
            }
            var (a, b, c, d) = X86Base.CpuId(unchecked((int)word.Leaf), (int)word.Subleaf);
            uint value = (uint)(word.Register switch { "eax" => a, "ebx" => b, "ecx" => c, _ => d });
            for (int bit = 0; bit < 32; bit++)
            {
                if ((value >> bit & 1) != 0 && word.Bits[bit] is { } name)
                {
                    features.Add(name);
                }
            }
        }

        var (leaf1a, _, leaf1c, _) = X86Base.CpuId(1, 0);
        int family = (leaf1a >> 8) & 0xf;
        int model = (leaf1a >> 4) & 0xf;
        if (family == 0xf)
        {
            family += (leaf1a >> 20) & 0xff;
        }
        if (family >= 6)
        {
            model += ((leaf1a >> 16) & 0xf) << 4;
        }
        var disabled = OsDisabled(features, osxsave: (leaf1c >> 27 & 1) != 0);
        features.ExceptWith(disabled);
        return new HostCpuInfo(vendor, family, model, leaf1a & 0xf, Brand(maxExtended), features, disabled,
            CpuFeatureInfo.SupportedLevel(features));
    }

    /// <summary>
    /// AVX and AVX-512 need the OS to save their registers (CPUID.1:ECX.OSXSAVE and XCR0). .NET's
    /// Avx/Avx512F.IsSupported include the XCR0 check, so CPUID bits they deny are reported as OS-disabled.
    /// </summary>
    private static List<string> OsDisabled(IReadOnlySet<string> features, bool osxsave)
    {
        var disabled = new List<string>();
        bool avxState = osxsave && (Avx.IsSupported || !features.Contains("avx") || EnvDisables("DOTNET_EnableAVX"));
        bool avx512State = avxState && (Avx512F.IsSupported || !features.Contains("avx512f") || EnvDisables("DOTNET_EnableAVX512F"));
        foreach (var f in features)
        {
            bool isAvx512 = f.StartsWith("avx512", StringComparison.Ordinal);
            if ((!avxState && (AvxState.Contains(f) || isAvx512 || f.StartsWith("amx", StringComparison.Ordinal))) || (!avx512State && isAvx512))
            {
                disabled.Add(f);
            }
        }
        return disabled;
    }

    private static bool EnvDisables(string name) => Environment.GetEnvironmentVariable(name) is "0";

    private static string Vendor(int b, int d, int c)
    {
        Span<byte> bytes = stackalloc byte[12];
        BitConverter.TryWriteBytes(bytes, b);
        BitConverter.TryWriteBytes(bytes[4..], d);
        BitConverter.TryWriteBytes(bytes[8..], c);
        return Encoding.ASCII.GetString(bytes);
    }

    private static string Brand(uint maxExtended)
    {
        if (maxExtended < 0x80000004)
        {
            return "";
        }
        var bytes = new byte[48];
        for (int i = 0; i < 3; i++)
        {
            var (a, b, c, d) = X86Base.CpuId(unchecked((int)(0x80000002 + i)), 0);
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 16), a);
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 16 + 4), b);
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 16 + 8), c);
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 16 + 12), d);
        }
        return Encoding.ASCII.GetString(bytes).TrimEnd('\0').Trim();
    }
}
