namespace Ferry.Wasm.Snapshots;

/// <summary>
/// Record kinds of the snapshot format (docs/snapshot-format.md). Values are written to disk and to the
/// migration wire: append only, never renumber (a test pins them).
/// </summary>
public enum RecordKind : ushort
{
    Module = 1,
    Metadata = 2,
    Globals = 3,
    Tables = 4,
    Segments = 5,
    Frames = 6,
    Wasi = 7,
    Memory = 8,
    /// <summary>Optional: the module's bytes, so a snapshot restores without the original file.</summary>
    ModuleCode = 9,
    End = 0xFFFF,
}

/// <summary>Constants of the snapshot container.</summary>
public static class SnapshotFormat
{
    /// <summary>"FERRYSNP" — the first eight bytes of every snapshot file.</summary>
    public static ReadOnlySpan<byte> Magic => "FERRYSNP"u8;

    public const ushort Version = 1;

    /// <summary>Memory is recorded in 4 KiB pages (the host page size everywhere Ferry runs, and the tracking unit).</summary>
    public const int PageSize = 4096;

    /// <summary>Upper bound on a small (non-memory) record, so a corrupt length cannot make a reader allocate unboundedly.</summary>
    public const int MaxSmallRecord = 256 << 20;
}

/// <summary>A snapshot file (or stream) is not a valid Ferry snapshot, or does not belong to the given module.</summary>
public sealed class SnapshotFormatException(string message) : WasmException(message);
