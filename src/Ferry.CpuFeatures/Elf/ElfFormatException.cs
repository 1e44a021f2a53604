namespace Ferry.CpuFeatures.Elf;

/// <summary>Why a file could not be analysed. Stable names: they appear in `cpu scan --json` output.</summary>
public enum ElfErrorKind
{
    /// <summary>The file does not start with the ELF magic (a script, a text file, an archive).</summary>
    NotElf,
    /// <summary>A valid ELF file Ferry does not analyse: 32-bit, big-endian, another machine, a core dump.</summary>
    Unsupported,
    /// <summary>A header or table points past the end of the file.</summary>
    Truncated,
    /// <summary>Inconsistent headers (wrong entry sizes, impossible counts, overlapping tables).</summary>
    Malformed,
    /// <summary>Larger than the configured limit.</summary>
    TooLarge,
    /// <summary>The file could not be opened or read.</summary>
    Io,
}

/// <summary>A per-file failure: the scan reports it for that file and goes on with the others.</summary>
public sealed class ElfFormatException(ElfErrorKind kind, string message) : Exception(message)
{
    public ElfErrorKind Kind { get; } = kind;

    public string KindName => Kind switch
    {
        ElfErrorKind.NotElf => "not-elf",
        ElfErrorKind.Unsupported => "unsupported",
        ElfErrorKind.Truncated => "truncated",
        ElfErrorKind.Malformed => "malformed",
        ElfErrorKind.TooLarge => "too-large",
        _ => "io",
    };
}
