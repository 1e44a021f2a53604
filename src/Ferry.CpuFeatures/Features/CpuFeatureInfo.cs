using System.Collections.Frozen;

namespace Ferry.CpuFeatures.Features;

/// <summary>
/// Names and psABI levels of <see cref="CpuFeature"/> values. Names are the Linux /proc/cpuinfo flags
/// (so SSE3 is "pni", LZCNT is "abm", SHA is "sha_ni"); host and QEMU-model features use the same spelling.
/// </summary>
public static class CpuFeatureInfo
{
    /// <summary>Features every x86-64 CPU has: they never narrow the set of hosts a program can run on.</summary>
    public static FeatureSet Baseline { get; } = FeatureSet.Of(
        CpuFeature.Fpu, CpuFeature.Tsc, CpuFeature.Cx8, CpuFeature.Cmov, CpuFeature.Mmx, CpuFeature.Fxsr,
        CpuFeature.Sse, CpuFeature.Sse2, CpuFeature.Syscall, CpuFeature.Lm, CpuFeature.Clflush);

    public static FeatureSet V2 { get; } = FeatureSet.Of(
        CpuFeature.Cx16, CpuFeature.LahfLm, CpuFeature.Popcnt, CpuFeature.Pni, CpuFeature.Ssse3,
        CpuFeature.Sse4_1, CpuFeature.Sse4_2);

    public static FeatureSet V3 { get; } = FeatureSet.Of(
        CpuFeature.Avx, CpuFeature.Avx2, CpuFeature.Bmi1, CpuFeature.Bmi2, CpuFeature.F16c, CpuFeature.Fma,
        CpuFeature.Abm, CpuFeature.Movbe, CpuFeature.Xsave);

    public static FeatureSet V4 { get; } = FeatureSet.Of(
        CpuFeature.Avx512F, CpuFeature.Avx512Bw, CpuFeature.Avx512Cd, CpuFeature.Avx512Dq, CpuFeature.Avx512Vl);

    /// <summary>Every AVX-512 feature: QEMU's TCG emulates none of them.</summary>
    public static FeatureSet Avx512Family { get; } = FeatureSet.Of(
        CpuFeature.Avx512F, CpuFeature.Avx512Bw, CpuFeature.Avx512Cd, CpuFeature.Avx512Dq, CpuFeature.Avx512Vl,
        CpuFeature.Avx512Ifma, CpuFeature.Avx512Vbmi, CpuFeature.Avx512Vbmi2, CpuFeature.Avx512Vnni,
        CpuFeature.Avx512Bitalg, CpuFeature.Avx512Vpopcntdq, CpuFeature.Avx512Bf16, CpuFeature.Avx512Fp16,
        CpuFeature.Avx512Vp2intersect, CpuFeature.Avx512Er, CpuFeature.Avx512Pf, CpuFeature.Avx512_4vnniw,
        CpuFeature.Avx512_4fmaps);

    // Declared after the level sets above: static initialisers run in text order and BuildLevels reads them.
    private static readonly string[] NameTable = BuildNames();
    private static readonly IsaLevel[] LevelTable = BuildLevels();
    private static readonly FrozenDictionary<string, CpuFeature> ByName = BuildByName();

    public static string Name(CpuFeature feature) => NameTable[(int)feature];

    public static IsaLevel Level(CpuFeature feature) => LevelTable[(int)feature];

    public static bool TryParse(string name, out CpuFeature feature) => ByName.TryGetValue(name, out feature);

    /// <summary>The features a psABI level adds to the one below it.</summary>
    public static FeatureSet Added(IsaLevel level) => level switch
    {
        IsaLevel.V1 => Baseline,
        IsaLevel.V2 => V2,
        IsaLevel.V3 => V3,
        IsaLevel.V4 => V4,
        _ => FeatureSet.Empty,
    };

    /// <summary>The psABI level a set of needed features implies: the highest level any member belongs to.</summary>
    public static IsaLevel ImpliedLevel(FeatureSet needed)
    {
        if (needed.Overlaps(V4))
        {
            return IsaLevel.V4;
        }
        if (needed.Overlaps(V3))
        {
            return IsaLevel.V3;
        }
        return needed.Overlaps(V2) ? IsaLevel.V2 : IsaLevel.V1;
    }

    /// <summary>The highest psABI level whose features (and those of every lower level) a CPU has all of.</summary>
    public static IsaLevel SupportedLevel(IReadOnlySet<string> cpuFlags)
    {
        var level = IsaLevel.None;
        foreach (var candidate in (ReadOnlySpan<IsaLevel>)[IsaLevel.V1, IsaLevel.V2, IsaLevel.V3, IsaLevel.V4])
        {
            foreach (var feature in Added(candidate).Members())
            {
                if (!cpuFlags.Contains(Name(feature)))
                {
                    return level;
                }
            }
            level = candidate;
        }
        return level;
    }

    private static string[] BuildNames()
    {
        if ((int)CpuFeature.Count > 128)
        {
            throw new InvalidOperationException("CpuFeature has more than 128 values; widen FeatureSet.");
        }
        var names = new string[(int)CpuFeature.Count];
        void Set(CpuFeature f, string n) => names[(int)f] = n;
        Set(CpuFeature.None, "none");
        Set(CpuFeature.Fpu, "fpu");
        Set(CpuFeature.Tsc, "tsc");
        Set(CpuFeature.Cx8, "cx8");
        Set(CpuFeature.Cmov, "cmov");
        Set(CpuFeature.Mmx, "mmx");
        Set(CpuFeature.Fxsr, "fxsr");
        Set(CpuFeature.Sse, "sse");
        Set(CpuFeature.Sse2, "sse2");
        Set(CpuFeature.Syscall, "syscall");
        Set(CpuFeature.Lm, "lm");
        Set(CpuFeature.Clflush, "clflush");
        Set(CpuFeature.Cx16, "cx16");
        Set(CpuFeature.LahfLm, "lahf_lm");
        Set(CpuFeature.Popcnt, "popcnt");
        Set(CpuFeature.Pni, "pni");
        Set(CpuFeature.Ssse3, "ssse3");
        Set(CpuFeature.Sse4_1, "sse4_1");
        Set(CpuFeature.Sse4_2, "sse4_2");
        Set(CpuFeature.Avx, "avx");
        Set(CpuFeature.Avx2, "avx2");
        Set(CpuFeature.Bmi1, "bmi1");
        Set(CpuFeature.Bmi2, "bmi2");
        Set(CpuFeature.F16c, "f16c");
        Set(CpuFeature.Fma, "fma");
        Set(CpuFeature.Abm, "abm");
        Set(CpuFeature.Movbe, "movbe");
        Set(CpuFeature.Xsave, "xsave");
        Set(CpuFeature.Avx512F, "avx512f");
        Set(CpuFeature.Avx512Bw, "avx512bw");
        Set(CpuFeature.Avx512Cd, "avx512cd");
        Set(CpuFeature.Avx512Dq, "avx512dq");
        Set(CpuFeature.Avx512Vl, "avx512vl");
        Set(CpuFeature.Pclmulqdq, "pclmulqdq");
        Set(CpuFeature.Aes, "aes");
        Set(CpuFeature.Rdrand, "rdrand");
        Set(CpuFeature.Rdseed, "rdseed");
        Set(CpuFeature.Adx, "adx");
        Set(CpuFeature.ShaNi, "sha_ni");
        Set(CpuFeature.Sse4a, "sse4a");
        Set(CpuFeature.Xop, "xop");
        Set(CpuFeature.Fma4, "fma4");
        Set(CpuFeature.Tbm, "tbm");
        Set(CpuFeature.Lwp, "lwp");
        Set(CpuFeature.Amd3dNow, "3dnow");
        Set(CpuFeature.Amd3dNowExt, "3dnowext");
        Set(CpuFeature.Prefetchw, "3dnowprefetch");
        Set(CpuFeature.Rdtscp, "rdtscp");
        Set(CpuFeature.Rdpid, "rdpid");
        Set(CpuFeature.Fsgsbase, "fsgsbase");
        Set(CpuFeature.Monitor, "monitor");
        Set(CpuFeature.Mwaitx, "mwaitx");
        Set(CpuFeature.Clflushopt, "clflushopt");
        Set(CpuFeature.Clwb, "clwb");
        Set(CpuFeature.Clzero, "clzero");
        Set(CpuFeature.Xsaveopt, "xsaveopt");
        Set(CpuFeature.Xsavec, "xsavec");
        Set(CpuFeature.Xsaves, "xsaves");
        Set(CpuFeature.Rtm, "rtm");
        Set(CpuFeature.Pku, "pku");
        Set(CpuFeature.Avx512Ifma, "avx512ifma");
        Set(CpuFeature.Avx512Vbmi, "avx512vbmi");
        Set(CpuFeature.Avx512Vbmi2, "avx512_vbmi2");
        Set(CpuFeature.Avx512Vnni, "avx512_vnni");
        Set(CpuFeature.Avx512Bitalg, "avx512_bitalg");
        Set(CpuFeature.Avx512Vpopcntdq, "avx512_vpopcntdq");
        Set(CpuFeature.Avx512Bf16, "avx512_bf16");
        Set(CpuFeature.Avx512Fp16, "avx512_fp16");
        Set(CpuFeature.Avx512Vp2intersect, "avx512_vp2intersect");
        Set(CpuFeature.Avx512Er, "avx512er");
        Set(CpuFeature.Avx512Pf, "avx512pf");
        Set(CpuFeature.Avx512_4vnniw, "avx512_4vnniw");
        Set(CpuFeature.Avx512_4fmaps, "avx512_4fmaps");
        Set(CpuFeature.Gfni, "gfni");
        Set(CpuFeature.Vaes, "vaes");
        Set(CpuFeature.Vpclmulqdq, "vpclmulqdq");
        Set(CpuFeature.AvxVnni, "avx_vnni");
        Set(CpuFeature.AvxIfma, "avx_ifma");
        Set(CpuFeature.AvxVnniInt8, "avx_vnni_int8");
        Set(CpuFeature.AvxVnniInt16, "avx_vnni_int16");
        Set(CpuFeature.AvxNeConvert, "avx_ne_convert");
        Set(CpuFeature.AmxTile, "amx_tile");
        Set(CpuFeature.AmxInt8, "amx_int8");
        Set(CpuFeature.AmxBf16, "amx_bf16");
        Set(CpuFeature.AmxFp16, "amx_fp16");
        Set(CpuFeature.AmxComplex, "amx_complex");
        Set(CpuFeature.Serialize, "serialize");
        Set(CpuFeature.Tsxldtrk, "tsxldtrk");
        Set(CpuFeature.Waitpkg, "waitpkg");
        Set(CpuFeature.Movdiri, "movdiri");
        Set(CpuFeature.Movdir64b, "movdir64b");
        Set(CpuFeature.Enqcmd, "enqcmd");
        Set(CpuFeature.Cldemote, "cldemote");
        Set(CpuFeature.Uintr, "uintr");
        Set(CpuFeature.Hreset, "hreset");
        Set(CpuFeature.Cmpccxadd, "cmpccxadd");
        Set(CpuFeature.Prefetchiti, "prefetchiti");
        Set(CpuFeature.RaoInt, "rao_int");
        Set(CpuFeature.Sha512, "sha512");
        Set(CpuFeature.Sm3, "sm3");
        Set(CpuFeature.Sm4, "sm4");
        Set(CpuFeature.Wbnoinvd, "wbnoinvd");
        Set(CpuFeature.Rdpru, "rdpru");
        Set(CpuFeature.Invpcid, "invpcid");
        Set(CpuFeature.Smap, "smap");
        Set(CpuFeature.Ptwrite, "ptwrite");
        Set(CpuFeature.Sgx, "sgx");
        Set(CpuFeature.Vmx, "vmx");
        Set(CpuFeature.Svm, "svm");
        Set(CpuFeature.Smx, "smx");
        Set(CpuFeature.Keylocker, "keylocker");
        Set(CpuFeature.PadlockAce, "ace");
        Set(CpuFeature.PadlockPhe, "phe");
        Set(CpuFeature.PadlockPmm, "pmm");
        Set(CpuFeature.PadlockRng, "rng");
        Set(CpuFeature.Msrlist, "msrlist");
        Set(CpuFeature.Wrmsrns, "wrmsrns");
        Set(CpuFeature.Pconfig, "pconfig");
        Set(CpuFeature.Fred, "fred");
        Set(CpuFeature.Lkgs, "lkgs");
        Set(CpuFeature.Invlpgb, "invlpgb");
        Set(CpuFeature.Mcommit, "mcommit");
        Set(CpuFeature.Sev, "sev");
        for (int i = 0; i < names.Length; i++)
        {
            if (names[i] is null)
            {
                throw new InvalidOperationException($"CpuFeature {(CpuFeature)i} has no /proc/cpuinfo name.");
            }
        }
        return names;
    }

    private static IsaLevel[] BuildLevels()
    {
        var levels = new IsaLevel[(int)CpuFeature.Count];
        foreach (var level in (ReadOnlySpan<IsaLevel>)[IsaLevel.V1, IsaLevel.V2, IsaLevel.V3, IsaLevel.V4])
        {
            foreach (var feature in Added(level).Members())
            {
                levels[(int)feature] = level;
            }
        }
        return levels;
    }

    private static FrozenDictionary<string, CpuFeature> BuildByName()
    {
        var map = new Dictionary<string, CpuFeature>(StringComparer.Ordinal);
        for (int i = 1; i < (int)CpuFeature.Count; i++)
        {
            map[NameTable[i]] = (CpuFeature)i;
        }
        return map.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
