namespace Ferry.Wasm.Wasi;

/// <summary>
/// What an open WASI descriptor is. Persisted in snapshots: values are explicit and append-only.
/// </summary>
public enum WasiFdKind
{
    /// <summary>One of the host's standard streams (which one: <see cref="WasiFdState.StdioIndex"/>).</summary>
    Stdio = 0,
    /// <summary>A regular file (or other non-directory) opened with path_open.</summary>
    File = 1,
    /// <summary>A directory opened with path_open.</summary>
    Directory = 2,
    /// <summary>A preopened directory (<see cref="WasiFdState.PreopenIndex"/>).</summary>
    Preopen = 3,
}

/// <summary>A preopened directory: the name the guest sees and the host directory it maps to.</summary>
public sealed record WasiPreopenState(string GuestPath, string HostPath);

/// <summary>One directory entry as fd_readdir reported it (kept so a restored listing continues identically).</summary>
public sealed record WasiDirEntryState(string Name, ulong Inode, FileType Type);

/// <summary>
/// One open descriptor, as plain data: no native handles, only paths, so it can be reopened in another process.
/// </summary>
public sealed record WasiFdState
{
    public required int Fd { get; init; }
    public required WasiFdKind Kind { get; init; }
    /// <summary>0, 1 or 2 for <see cref="WasiFdKind.Stdio"/>; −1 otherwise.</summary>
    public int StdioIndex { get; init; } = -1;
    /// <summary>Index into <see cref="WasiState.Preopens"/> of the preopen this descriptor lives under; −1 for stdio.</summary>
    public int PreopenIndex { get; init; } = -1;
    /// <summary>Path relative to the preopen ("." for the preopen itself), with '/' separators.</summary>
    public string GuestPath { get; init; } = "";
    /// <summary>Absolute host path at capture time (for diagnostics and checks; reopening uses preopen + GuestPath).</summary>
    public string HostPath { get; init; } = "";
    /// <summary>Whether the descriptor was opened for reading and/or writing on the host.</summary>
    public bool Read { get; init; }
    public bool Write { get; init; }
    public FdFlags Flags { get; init; }
    public Rights RightsBase { get; init; }
    public Rights RightsInheriting { get; init; }
    /// <summary>The current file offset (files only).</summary>
    public long Position { get; init; }
    /// <summary>The listing fd_readdir is paging through (directories only; empty when none is cached).</summary>
    public IReadOnlyList<WasiDirEntryState> DirEntries { get; init; } = [];
}

/// <summary>
/// All WASI state of a running program, as a plain data record (<see cref="WasiContext.Capture"/>,
/// <see cref="WasiContext.Restore"/>). Contains nothing host-specific beyond paths.
/// </summary>
public sealed record WasiState
{
    public required IReadOnlyList<string> Args { get; init; }
    /// <summary>Environment entries as "KEY=VALUE".</summary>
    public required IReadOnlyList<string> Env { get; init; }
    public required IReadOnlyList<WasiPreopenState> Preopens { get; init; }
    /// <summary>Every open descriptor, by ascending number.</summary>
    public required IReadOnlyList<WasiFdState> Fds { get; init; }
    /// <summary>The lowest descriptor number the next open will consider.</summary>
    public required int NextFd { get; init; }
    /// <summary>The guest's monotonic clock at capture (ns); a restored context continues from here.</summary>
    public required long MonotonicNanos { get; init; }
}

/// <summary>A snapshot cannot be restored on this host (a file vanished, a preopen maps elsewhere, bad data).</summary>
public sealed class WasiRestoreException(string message) : WasmException(message);

/// <summary>The WASI configuration is not usable (a preopen is missing, bad environment entry, ...).</summary>
public sealed class WasiConfigurationException(string message) : WasmException(message);

/// <summary>
/// Thrown by proc_exit: unwinds the guest's stack to the host, which ends the program with <see cref="Code"/>.
/// </summary>
public sealed class WasiExitException(int code) : WasmException($"the program exited with code {code}")
{
    public int Code { get; } = code;
}
