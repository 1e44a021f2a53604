namespace Ferry.Wasm.Wasi;

/// <summary>A directory the guest may use: <see cref="HostPath"/> on this machine, seen as <see cref="GuestPath"/>.</summary>
public sealed record WasiPreopen(string HostPath, string GuestPath);

/// <summary>
/// Where a standard stream of the guest goes: a host file descriptor (the process's own stdin/stdout/stderr, or
/// a pipe), or a .NET <see cref="Stream"/>. Reads of a host descriptor wait with poll(2) and can be interrupted
/// by a freeze; reads of a Stream cannot (tests and embedders that need that should pass a pipe).
/// </summary>
public sealed class WasiStdio
{
    private WasiStdio(int fd, Stream? stream, bool ownsFd)
    {
        HostFd = fd;
        Stream = stream;
        OwnsFd = ownsFd;
    }

    public int HostFd { get; }
    public Stream? Stream { get; }
    /// <summary>Close the host descriptor when the context is disposed.</summary>
    public bool OwnsFd { get; }

    public static WasiStdio FromHostFd(int fd, bool ownsFd = false) => new(fd, null, ownsFd);
    public static WasiStdio FromStream(Stream stream) => new(-1, stream ?? throw new ArgumentNullException(nameof(stream)), false);

    public static WasiStdio ProcessStdin => FromHostFd(0);
    public static WasiStdio ProcessStdout => FromHostFd(1);
    public static WasiStdio ProcessStderr => FromHostFd(2);
}

/// <summary>The configuration of a WASI program: what it sees of the host.</summary>
public sealed record WasiOptions
{
    /// <summary>argv, including argv[0] (by convention the program's name).</summary>
    public IReadOnlyList<string> Args { get; init; } = [];
    /// <summary>Environment as "KEY=VALUE" entries, in order.</summary>
    public IReadOnlyList<string> Env { get; init; } = [];
    /// <summary>Directories the guest can reach; they become descriptors 3, 4, ... in this order.</summary>
    public IReadOnlyList<WasiPreopen> Preopens { get; init; } = [];
    public WasiStdio Stdin { get; init; } = WasiStdio.ProcessStdin;
    public WasiStdio Stdout { get; init; } = WasiStdio.ProcessStdout;
    public WasiStdio Stderr { get; init; } = WasiStdio.ProcessStderr;
    /// <summary>Bytes of stdout buffered before a write to the host (0: write through).</summary>
    public int StdoutBufferBytes { get; init; } = 64 * 1024;
}
