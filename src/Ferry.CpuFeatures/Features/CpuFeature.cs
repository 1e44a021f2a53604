namespace Ferry.CpuFeatures.Features;

/// <summary>
/// The CPU features an instruction can need, one value per /proc/cpuinfo flag.
/// Values are indices into a <see cref="FeatureSet"/> (at most 128); they never reach disk or the wire —
/// JSON carries the flag names from <see cref="CpuFeatureInfo"/>.
/// </summary>
public enum CpuFeature : byte
{
    None = 0,

    // Every x86-64 CPU has these (psABI x86-64 baseline, plus lm/tsc/clflush which all AMD64 CPUs have).
    Fpu, Tsc, Cx8, Cmov, Mmx, Fxsr, Sse, Sse2, Syscall, Lm, Clflush,

    // x86-64-v2
    Cx16, LahfLm, Popcnt, Pni, Ssse3, Sse4_1, Sse4_2,

    // x86-64-v3
    Avx, Avx2, Bmi1, Bmi2, F16c, Fma, Abm, Movbe, Xsave,

    // x86-64-v4
    Avx512F, Avx512Bw, Avx512Cd, Avx512Dq, Avx512Vl,

    // Outside the psABI levels.
    Pclmulqdq, Aes, Rdrand, Rdseed, Adx, ShaNi, Sse4a, Xop, Fma4, Tbm, Lwp, Amd3dNow, Amd3dNowExt,
    Prefetchw, Rdtscp, Rdpid, Fsgsbase, Monitor, Mwaitx, Clflushopt, Clwb, Clzero, Xsaveopt, Xsavec,
    Xsaves, Rtm, Pku, Avx512Ifma, Avx512Vbmi, Avx512Vbmi2, Avx512Vnni, Avx512Bitalg, Avx512Vpopcntdq,
    Avx512Bf16, Avx512Fp16, Avx512Vp2intersect, Avx512Er, Avx512Pf, Avx512_4vnniw, Avx512_4fmaps,
    Gfni, Vaes, Vpclmulqdq, AvxVnni, AvxIfma, AvxVnniInt8, AvxVnniInt16, AvxNeConvert, AmxTile,
    AmxInt8, AmxBf16, AmxFp16, AmxComplex, Serialize, Tsxldtrk, Waitpkg, Movdiri, Movdir64b, Enqcmd,
    Cldemote, Uintr, Hreset, Cmpccxadd, Prefetchiti, RaoInt, Sha512, Sm3, Sm4, Wbnoinvd, Rdpru,
    Invpcid, Smap, Ptwrite, Sgx, Vmx, Svm, Smx, Keylocker, PadlockAce, PadlockPhe, PadlockPmm,
    PadlockRng, Msrlist, Wrmsrns, Pconfig, Fred, Lkgs, Invlpgb, Mcommit, Sev,

    /// <summary>One past the last value; the size of per-feature tables.</summary>
    Count,
}
