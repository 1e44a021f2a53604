using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Ferry.CpuFeatures.Features;

/// <summary>
/// Maps Iced's per-instruction <see cref="CpuidFeature"/> lists to <see cref="CpuFeature"/> sets, once per
/// <see cref="Code"/>, so the decode loop classifies an instruction with one array load.
/// </summary>
public static class IcedFeatureMap
{
    private static readonly FeatureSet[] ByCode = BuildCodeTable();

    /// <summary>The features an instruction needs on an x86-64 CPU (empty for hints that execute as NOPs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FeatureSet For(Code code) => ByCode[(int)code];

    /// <summary>
    /// The feature for one Iced value, or <see cref="CpuFeature.None"/> when the instruction runs on every
    /// x86-64 CPU regardless (8086–486 instructions, NOP-space hints such as ENDBR64 and HLE prefixes) or
    /// cannot occur in 64-bit user code (Cyrix, Itanium, Knights Corner).
    /// </summary>
    public static CpuFeature Map(CpuidFeature feature) => feature switch
    {
        CpuidFeature.FPU or CpuidFeature.FPU287 or CpuidFeature.FPU387 => CpuFeature.Fpu,
        CpuidFeature.TSC => CpuFeature.Tsc,
        CpuidFeature.CX8 => CpuFeature.Cx8,
        CpuidFeature.CMOV => CpuFeature.Cmov,
        CpuidFeature.MMX => CpuFeature.Mmx,
        CpuidFeature.FXSR => CpuFeature.Fxsr,
        CpuidFeature.SSE => CpuFeature.Sse,
        CpuidFeature.SSE2 => CpuFeature.Sse2,
        CpuidFeature.SYSCALL => CpuFeature.Syscall,
        CpuidFeature.X64 => CpuFeature.Lm,
        CpuidFeature.CLFSH => CpuFeature.Clflush,
        CpuidFeature.CMPXCHG16B => CpuFeature.Cx16,
        CpuidFeature.POPCNT => CpuFeature.Popcnt,
        CpuidFeature.SSE3 => CpuFeature.Pni,
        CpuidFeature.SSSE3 => CpuFeature.Ssse3,
        CpuidFeature.SSE4_1 => CpuFeature.Sse4_1,
        CpuidFeature.SSE4_2 => CpuFeature.Sse4_2,
        CpuidFeature.AVX => CpuFeature.Avx,
        CpuidFeature.AVX2 => CpuFeature.Avx2,
        CpuidFeature.BMI1 => CpuFeature.Bmi1,
        CpuidFeature.BMI2 => CpuFeature.Bmi2,
        CpuidFeature.F16C => CpuFeature.F16c,
        CpuidFeature.FMA => CpuFeature.Fma,
        CpuidFeature.LZCNT => CpuFeature.Abm,
        CpuidFeature.MOVBE => CpuFeature.Movbe,
        CpuidFeature.XSAVE => CpuFeature.Xsave,
        CpuidFeature.AVX512F => CpuFeature.Avx512F,
        CpuidFeature.AVX512BW => CpuFeature.Avx512Bw,
        CpuidFeature.AVX512CD => CpuFeature.Avx512Cd,
        CpuidFeature.AVX512DQ => CpuFeature.Avx512Dq,
        CpuidFeature.AVX512VL => CpuFeature.Avx512Vl,
        CpuidFeature.PCLMULQDQ => CpuFeature.Pclmulqdq,
        CpuidFeature.AES => CpuFeature.Aes,
        CpuidFeature.RDRAND => CpuFeature.Rdrand,
        CpuidFeature.RDSEED => CpuFeature.Rdseed,
        CpuidFeature.ADX => CpuFeature.Adx,
        CpuidFeature.SHA => CpuFeature.ShaNi,
        CpuidFeature.SSE4A => CpuFeature.Sse4a,
        CpuidFeature.XOP => CpuFeature.Xop,
        CpuidFeature.FMA4 => CpuFeature.Fma4,
        CpuidFeature.TBM => CpuFeature.Tbm,
        CpuidFeature.LWP => CpuFeature.Lwp,
        CpuidFeature.D3NOW => CpuFeature.Amd3dNow,
        CpuidFeature.D3NOWEXT => CpuFeature.Amd3dNowExt,
        CpuidFeature.PREFETCHW => CpuFeature.Prefetchw,
        CpuidFeature.RDTSCP => CpuFeature.Rdtscp,
        CpuidFeature.RDPID => CpuFeature.Rdpid,
        CpuidFeature.FSGSBASE => CpuFeature.Fsgsbase,
        CpuidFeature.MONITOR => CpuFeature.Monitor,
        CpuidFeature.MONITORX => CpuFeature.Mwaitx,
        CpuidFeature.CLFLUSHOPT => CpuFeature.Clflushopt,
        CpuidFeature.CLWB => CpuFeature.Clwb,
        CpuidFeature.CLZERO => CpuFeature.Clzero,
        CpuidFeature.XSAVEOPT => CpuFeature.Xsaveopt,
        CpuidFeature.XSAVEC => CpuFeature.Xsavec,
        CpuidFeature.XSAVES => CpuFeature.Xsaves,
        // XTEST faults unless HLE or RTM exists; XBEGIN/XEND need RTM. HLE prefixes alone are ignored.
        CpuidFeature.RTM or CpuidFeature.HLE_or_RTM => CpuFeature.Rtm,
        CpuidFeature.PKU => CpuFeature.Pku,
        CpuidFeature.AVX512_IFMA => CpuFeature.Avx512Ifma,
        CpuidFeature.AVX512_VBMI => CpuFeature.Avx512Vbmi,
        CpuidFeature.AVX512_VBMI2 => CpuFeature.Avx512Vbmi2,
        CpuidFeature.AVX512_VNNI => CpuFeature.Avx512Vnni,
        CpuidFeature.AVX512_BITALG => CpuFeature.Avx512Bitalg,
        CpuidFeature.AVX512_VPOPCNTDQ => CpuFeature.Avx512Vpopcntdq,
        CpuidFeature.AVX512_BF16 => CpuFeature.Avx512Bf16,
        CpuidFeature.AVX512_FP16 => CpuFeature.Avx512Fp16,
        CpuidFeature.AVX512_VP2INTERSECT => CpuFeature.Avx512Vp2intersect,
        CpuidFeature.AVX512ER => CpuFeature.Avx512Er,
        CpuidFeature.AVX512PF => CpuFeature.Avx512Pf,
        CpuidFeature.AVX512_4VNNIW => CpuFeature.Avx512_4vnniw,
        CpuidFeature.AVX512_4FMAPS => CpuFeature.Avx512_4fmaps,
        CpuidFeature.GFNI => CpuFeature.Gfni,
        CpuidFeature.VAES => CpuFeature.Vaes,
        CpuidFeature.VPCLMULQDQ => CpuFeature.Vpclmulqdq,
        CpuidFeature.AVX_VNNI => CpuFeature.AvxVnni,
        CpuidFeature.AVX_IFMA => CpuFeature.AvxIfma,
        CpuidFeature.AVX_VNNI_INT8 => CpuFeature.AvxVnniInt8,
        CpuidFeature.AVX_VNNI_INT16 => CpuFeature.AvxVnniInt16,
        CpuidFeature.AVX_NE_CONVERT => CpuFeature.AvxNeConvert,
        CpuidFeature.AMX_TILE => CpuFeature.AmxTile,
        CpuidFeature.AMX_INT8 => CpuFeature.AmxInt8,
        CpuidFeature.AMX_BF16 => CpuFeature.AmxBf16,
        CpuidFeature.AMX_FP16 => CpuFeature.AmxFp16,
        CpuidFeature.AMX_COMPLEX => CpuFeature.AmxComplex,
        CpuidFeature.SERIALIZE => CpuFeature.Serialize,
        CpuidFeature.TSXLDTRK => CpuFeature.Tsxldtrk,
        CpuidFeature.WAITPKG => CpuFeature.Waitpkg,
        CpuidFeature.MOVDIRI => CpuFeature.Movdiri,
        CpuidFeature.MOVDIR64B => CpuFeature.Movdir64b,
        CpuidFeature.ENQCMD => CpuFeature.Enqcmd,
        CpuidFeature.CLDEMOTE => CpuFeature.Cldemote,
        CpuidFeature.UINTR => CpuFeature.Uintr,
        CpuidFeature.HRESET => CpuFeature.Hreset,
        CpuidFeature.CMPCCXADD => CpuFeature.Cmpccxadd,
        CpuidFeature.PREFETCHITI => CpuFeature.Prefetchiti,
        CpuidFeature.RAO_INT => CpuFeature.RaoInt,
        CpuidFeature.SHA512 => CpuFeature.Sha512,
        CpuidFeature.SM3 => CpuFeature.Sm3,
        CpuidFeature.SM4 => CpuFeature.Sm4,
        CpuidFeature.WBNOINVD => CpuFeature.Wbnoinvd,
        CpuidFeature.RDPRU => CpuFeature.Rdpru,
        CpuidFeature.INVPCID => CpuFeature.Invpcid,
        CpuidFeature.SMAP => CpuFeature.Smap,
        CpuidFeature.PTWRITE => CpuFeature.Ptwrite,
        CpuidFeature.SGX1 => CpuFeature.Sgx,
        CpuidFeature.VMX or CpuidFeature.INVEPT or CpuidFeature.INVVPID => CpuFeature.Vmx,
        CpuidFeature.SVM or CpuidFeature.SKINIT_or_SVM or CpuidFeature.SKINIT => CpuFeature.Svm,
        CpuidFeature.SMX => CpuFeature.Smx,
        CpuidFeature.KL or CpuidFeature.AESKLE or CpuidFeature.WIDE_KL => CpuFeature.Keylocker,
        CpuidFeature.PADLOCK_ACE => CpuFeature.PadlockAce,
        CpuidFeature.PADLOCK_PHE => CpuFeature.PadlockPhe,
        CpuidFeature.PADLOCK_PMM => CpuFeature.PadlockPmm,
        CpuidFeature.PADLOCK_RNG => CpuFeature.PadlockRng,
        CpuidFeature.MSRLIST => CpuFeature.Msrlist,
        CpuidFeature.WRMSRNS => CpuFeature.Wrmsrns,
        CpuidFeature.PCONFIG => CpuFeature.Pconfig,
        CpuidFeature.FRED => CpuFeature.Fred,
        CpuidFeature.LKGS => CpuFeature.Lkgs,
        CpuidFeature.INVLPGB => CpuFeature.Invlpgb,
        CpuidFeature.MCOMMIT => CpuFeature.Mcommit,
        CpuidFeature.SEV_ES or CpuidFeature.SEV_SNP or CpuidFeature.RMPQUERY => CpuFeature.Sev,
        _ => CpuFeature.None,
    };

    private static FeatureSet BaseFor(Code code)
    {
        // LAHF/SAHF in 64-bit mode need CPUID.80000001H:ECX.LAHF-SAHF; Iced files them under 8086.
        if (code is Code.Lahf or Code.Sahf)
        {
            return FeatureSet.Of(CpuFeature.LahfLm);
        }
        // TZCNT is REP BSF: CPUs without BMI1 execute it as BSF (same result for non-zero input), so GCC emits
        // it for __builtin_ctz at any -march. It never faults, so it needs nothing.
        if (code is Code.Tzcnt_r16_rm16 or Code.Tzcnt_r32_rm32 or Code.Tzcnt_r64_rm64)
        {
            return FeatureSet.Empty;
        }
        var instruction = new Instruction { Code = code };
        var set = FeatureSet.Empty;
        foreach (var feature in instruction.CpuidFeatures)
        {
            var mapped = Map(feature);
            if (mapped != CpuFeature.None)
            {
                set |= FeatureSet.Of(mapped);
            }
        }
        // Iced lists only the extension for EVEX forms (e.g. AVX512VL+AVX512BW); every EVEX instruction
        // needs AVX512F as well, which keeps the psABI-level arithmetic honest.
        if (set.Overlaps(CpuFeatureInfo.Avx512Family))
        {
            set |= FeatureSet.Of(CpuFeature.Avx512F);
        }
        return set;
    }

    private static FeatureSet[] BuildCodeTable()
    {
        var table = new FeatureSet[Enum.GetValues<Code>().Length];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = BaseFor((Code)i);
        }
        return table;
    }
}
