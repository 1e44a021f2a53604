using Ferry.CpuFeatures.Elf;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>What an indirect call or jump through a GOT slot reaches.</summary>
internal enum GotSlotKind : byte
{
    /// <summary>A symbol defined in another module (named by <see cref="GotSlot.Name"/>).</summary>
    Import,
    /// <summary>Code in this file (a preemptible export bound locally, or a RELATIVE pointer).</summary>
    Local,
    /// <summary>An R_X86_64_IRELATIVE slot: the loader stores what the resolver returns.</summary>
    Irelative,
    /// <summary>A pointer to CPU-feature data (e.g. glibc's _rtld_global_ro): loads through it read features.</summary>
    FeatureData,
}

internal readonly record struct GotSlot(GotSlotKind Kind, string Name, ulong Target);

/// <summary>
/// Per-file facts the decoder consults: GOT slots, which data holds CPU-feature bits, which calls never
/// return, and names for addresses. Built once per file from the symbol tables and relocations.
/// </summary>
internal sealed class BinaryContext
{
    /// <summary>Data objects whose loads are feature tests (libgcc/compiler-rt, glibc, OpenSSL, Go, ICC).</summary>
    private static readonly string[] FeatureDataNames =
    [
        "__cpu_model", "__cpu_features2", "__cpu_features", "_rtld_global_ro", "_dl_x86_cpu_features",
        "_dl_hwcap", "_dl_hwcap2", "OPENSSL_ia32cap_P", "__intel_cpu_feature_indicator",
        "__intel_cpu_feature_indicator_x", "__intel_cpu_indicator", "internal/cpu.X86", "golang.org/x/sys/cpu.X86",
    ];

    private static readonly string[] FeatureDataFragments = ["cpu_features", "cpu_model", "ia32cap", "x86Has", "cpu_has_"];

    /// <summary>Functions whose return value is feature bits (glibc's accessors of cpu_features).</summary>
    private static readonly HashSet<string> FeatureFunctionNames = new(StringComparer.Ordinal)
    {
        "__get_cpu_features", "_dl_x86_get_cpu_features", "__x86_get_cpu_features", "__x86_cpu_features",
    };

    private static readonly HashSet<string> NoReturnNames = new(StringComparer.Ordinal)
    {
        "abort", "exit", "_exit", "_Exit", "quick_exit", "__assert_fail", "__assert_perror_fail", "__stack_chk_fail",
        "__stack_chk_fail_local", "__chk_fail", "__fortify_fail", "err", "errx", "verr", "verrx", "longjmp",
        "_longjmp", "siglongjmp", "__longjmp_chk", "pthread_exit", "__cxa_throw", "__cxa_rethrow", "__cxa_bad_cast",
        "__cxa_bad_typeid", "__cxa_pure_virtual", "__cxa_deleted_virtual", "__cxa_throw_bad_array_new_length",
        "_Unwind_Resume", "_ZSt9terminatev", "__libc_fatal", "__libc_start_main", "__libc_start_call_main",
        "__go_runtime_error", "__ubsan_handle_builtin_unreachable", "runtime.throw", "runtime.fatalthrow",
        "runtime.gopanic", "rust_panic", "__rust_start_panic", "xalloc_die",
    };

    private readonly (ulong Start, ulong End)[] _featureData;
    private readonly Dictionary<ulong, GotSlot> _gotSlots = [];
    private readonly HashSet<ulong> _noReturnAddresses = [];
    private readonly HashSet<ulong> _featureFunctionAddresses = [];
    private readonly (ulong Start, ulong End)[] _writable;
    private readonly ulong _writableLow = ulong.MaxValue, _writableHigh;
    private readonly ulong _slotLow = ulong.MaxValue, _slotHigh;
    private readonly bool _hasFeatureSlots;

    public BinaryContext(ElfFile file, CodeSpace code)
    {
        File = file;
        Code = code;
        var featureData = new List<(ulong, ulong)>();
        var functions = new List<(ulong, ulong, string)>();
        foreach (var symbol in file.Symbols.Concat(file.DynamicSymbols))
        {
            if (!symbol.IsDefined || symbol.Value == 0)
            {
                continue;
            }
            if (symbol.IsFunction && code.Contains(symbol.Value))
            {
                functions.Add((symbol.Value, symbol.Size, symbol.Name));
                if (IsNoReturnName(symbol.Name))
                {
                    _noReturnAddresses.Add(symbol.Value);
                }
                if (FeatureFunctionNames.Contains(symbol.Name))
                {
                    _featureFunctionAddresses.Add(symbol.Value);
                }
            }
            else if (!symbol.IsFunction && IsFeatureDataName(symbol.Name))
            {
                featureData.Add((symbol.Value, symbol.Value + Math.Max(symbol.Size, 1)));
            }
        }
        foreach (var relocation in file.Relocations)
        {
            switch (relocation.Type)
            {
                case ElfConstants.RX86_64_Irelative:
                    _gotSlots[relocation.Offset] = new GotSlot(GotSlotKind.Irelative, "", (ulong)relocation.Addend);
                    break;
                case ElfConstants.RX86_64_GlobDat or ElfConstants.RX86_64_JumpSlot or ElfConstants.RX86_64_64:
                    if (IsFeatureDataName(relocation.SymbolName))
                    {
                        _gotSlots[relocation.Offset] = new GotSlot(GotSlotKind.FeatureData, relocation.SymbolName, 0);
                    }
                    else if (relocation.SymbolDefined && code.Contains(relocation.SymbolValue))
                    {
                        _gotSlots[relocation.Offset] = new GotSlot(GotSlotKind.Local, relocation.SymbolName,
                            relocation.SymbolValue + (relocation.Type == ElfConstants.RX86_64_64 ? (ulong)relocation.Addend : 0));
                    }
                    else if (relocation.SymbolName.Length > 0)
                    {
                        _gotSlots[relocation.Offset] = new GotSlot(GotSlotKind.Import, relocation.SymbolName, 0);
                    }
                    break;
                case ElfConstants.RX86_64_Relative when code.Contains((ulong)relocation.Addend):
                    _gotSlots.TryAdd(relocation.Offset, new GotSlot(GotSlotKind.Local, "", (ulong)relocation.Addend));
                    break;
            }
        }
        featureData.Sort();
        _featureData = [.. featureData];
        Symbols = new SymbolTable(functions);
        IsPositionIndependent = file.Type == ElfConstants.EtDyn;
        _writable = [.. file.Sections
            .Where(s => (s.Flags & (ElfConstants.ShfAlloc | 1)) == (ElfConstants.ShfAlloc | 1) && s.Address != 0 && s.Size > 0)
            .Select(s => (s.Address, s.End))
            .OrderBy(r => r.Address)];
        if (_writable.Length == 0)
        {
            // No section table: writable load segments.
            _writable = [.. file.Segments
                .Where(s => s.Type == ElfConstants.PtLoad && (s.Flags & 2) != 0)
                .Select(s => (s.Address, s.Address + s.MemorySize))
                .OrderBy(r => r.Item1)];
        }
        foreach (var (start, end) in _writable)
        {
            _writableLow = Math.Min(_writableLow, start);
            _writableHigh = Math.Max(_writableHigh, end);
        }
        foreach (var (address, slot) in _gotSlots)
        {
            _slotLow = Math.Min(_slotLow, address);
            _slotHigh = Math.Max(_slotHigh, address);
            _hasFeatureSlots |= slot.Kind == GotSlotKind.FeatureData;
        }
    }

    public ElfFile File { get; }
    public CodeSpace Code { get; }
    public bool IsPositionIndependent { get; }
    public IReadOnlyCollection<ulong> FeatureFunctionAddresses => _featureFunctionAddresses;

    public static bool IsNoReturnName(string name) =>
        NoReturnNames.Contains(name)
        || (name.StartsWith("_ZSt", StringComparison.Ordinal) && name.Contains("__throw_", StringComparison.Ordinal))
        || name.StartsWith("_ZN4core9panicking", StringComparison.Ordinal)
        || name.StartsWith("_ZN3std9panicking", StringComparison.Ordinal)
        || name.StartsWith("runtime.panic", StringComparison.Ordinal);

    public static bool IsFeatureDataName(string name)
    {
        if (name.Length == 0)
        {
            return false;
        }
        foreach (var exact in FeatureDataNames)
        {
            if (name == exact)
            {
                return true;
            }
        }
        foreach (var fragment in FeatureDataFragments)
        {
            if (name.Contains(fragment, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    public static bool IsFeatureFunctionName(string name) => FeatureFunctionNames.Contains(name);

    public bool IsNoReturn(ulong address) => _noReturnAddresses.Contains(address);

    public void AddNoReturn(ulong address) => _noReturnAddresses.Add(address);

    public bool IsFeatureFunction(ulong address) => _featureFunctionAddresses.Contains(address);

    public void AddFeatureFunction(ulong address) => _featureFunctionAddresses.Add(address);

    /// <summary>Writable, allocated data (.data, .bss, .got): the only place a feature variable can live.</summary>
    public bool IsWritableData(ulong address)
    {
        // Writable sections are usually one contiguous stretch: one compare rejects most addresses.
        if (address < _writableLow || address >= _writableHigh)
        {
            return false;
        }
        foreach (var (start, end) in _writable)
        {
            if (address >= start && address < end)
            {
                return true;
            }
        }
        return false;
    }

    public bool TryGetGotSlot(ulong address, out GotSlot slot)
    {
        if (address < _slotLow || address > _slotHigh)
        {
            slot = default;
            return false;
        }
        return _gotSlots.TryGetValue(address, out slot);
    }

    /// <summary>Symbol-defined function sizes: descent stops at a sized function's end.</summary>
    public ulong SizeOf(ulong entry) => Symbols.SizeOf(entry);

    public SymbolTable Symbols { get; }

    public IEnumerable<(ulong Address, ulong Size, string Name)> FunctionSymbols => Symbols.All;

    /// <summary>Whether a data address is (inside) a feature-data object; <paramref name="extra"/> holds discovered ones.</summary>
    public bool IsFeatureData(ulong address, FeatureVariables extra)
    {
        if (_featureData.Length == 0 && !_hasFeatureSlots)
        {
            return extra.Count > 0 && extra.Contains(address);
        }
        if (_hasFeatureSlots && TryGetGotSlot(address, out var slot) && slot.Kind == GotSlotKind.FeatureData)
        {
            return true;
        }
        int lo = 0, hi = _featureData.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_featureData[mid].End <= address)
            {
                lo = mid + 1;
            }
            else if (_featureData[mid].Start > address)
            {
                hi = mid - 1;
            }
            else
            {
                return true;
            }
        }
        return extra.Contains(address);
    }

    public string? NameFor(ulong address) => Symbols.NameFor(address);
}

/// <summary>
/// Memory that holds CPU-feature bits because the analysis saw a value derived from CPUID/XGETBV stored
/// there (how stripped binaries' copies of __cpu_model, or hand-rolled caches, are recognised).
/// </summary>
internal sealed class FeatureVariables
{
    private readonly List<(ulong Start, ulong End)> _ranges = [];
    private ulong _bloom;

    public int Count => _ranges.Count;

    public ulong Bloom => _bloom;

    public bool Add(ulong address, int size)
    {
        if (Contains(address))
        {
            return false;
        }
        lock (_ranges)
        {
            _ranges.Add((address, address + (ulong)Math.Max(size, 1)));
            _bloom |= BloomBit(address);
        }
        return true;
    }

    public bool Contains(ulong address) => ContainsAddedSince(address, 0);

    /// <summary>Whether one of the variables added after the first <paramref name="since"/> covers the address.</summary>
    public bool ContainsAddedSince(ulong address, int since)
    {
        if ((_bloom & BloomBit(address)) == 0)
        {
            return false;
        }
        for (int i = since; i < _ranges.Count; i++)
        {
            var (start, end) = _ranges[i];
            if (address >= start && address < end)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A 64-bit Bloom position per 16-byte granule: enough to skip functions that read nothing relevant.</summary>
    public static ulong BloomBit(ulong address) => 1UL << (int)((address >> 4) * 0x9E3779B97F4A7C15UL >> 58);
}
