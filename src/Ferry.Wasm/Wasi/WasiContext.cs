using System.Diagnostics;
using System.Text;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Wasi;

/// <summary>
/// All state of one WASI program: arguments, environment, preopened directories, the descriptor table and the
/// monotonic clock. <see cref="WasiHost"/> exposes it to a module; <see cref="Capture"/> and <see cref="Restore"/>
/// turn it into a plain <see cref="WasiState"/> and back (checkpoint/restore, live migration).
/// </summary>
public sealed unsafe class WasiContext : IDisposable
{
    private readonly List<FdEntry?> fds = [];
    private WasiPreopenState[] preopens;
    private readonly StdioChannel[] stdio;
    private long monotonicBase;
    private long monotonicOffset;
    private int nextFd;
    private int freezeEventFd = -1;
    private bool disposed;

    /// <summary>Creates a context for a new program: stdio on 0–2, then one descriptor per preopen.</summary>
    public WasiContext(WasiOptions options)
        : this(options, restoring: false)
    {
        for (var i = 0; i < 3; i++) fds.Add(NewStdio(i));
        for (var i = 0; i < preopens.Length; i++) fds.Add(OpenPreopen(i));
        nextFd = fds.Count;
        monotonicBase = Stopwatch.GetTimestamp();
    }

    private WasiContext(WasiOptions options, bool restoring)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Args = [.. options.Args];
        Env = [.. options.Env];
        foreach (var e in Env)
        {
            if (e.IndexOf('=') <= 0) throw new WasiConfigurationException($"environment entry '{e}' is not KEY=VALUE");
            if (e.Contains('\0')) throw new WasiConfigurationException("environment entries cannot contain NUL");
        }
        foreach (var a in Args)
        {
            if (a.Contains('\0')) throw new WasiConfigurationException("arguments cannot contain NUL");
        }
        stdio =
        [
            new StdioChannel(options.Stdin, 0, 0),
            new StdioChannel(options.Stdout, 1, options.StdoutBufferBytes),
            new StdioChannel(options.Stderr, 2, 0),
        ];
        preopens = restoring ? [] : [.. options.Preopens.Select(CanonicalPreopen)];
    }

    public WasiOptions Options { get; }
    public IReadOnlyList<string> Args { get; }
    /// <summary>Environment entries as "KEY=VALUE".</summary>
    public IReadOnlyList<string> Env { get; }
    public IReadOnlyList<WasiPreopenState> Preopens => preopens;

    /// <summary>The instance the context serves (set by <see cref="WasiHost.Bind"/>); its FreezeToken interrupts blocking calls.</summary>
    public InstanceBase? Guest { get; internal set; }

    /// <summary>Added to (host monotonic now − base) to give the guest's monotonic clock; the clock's value at the last restore.</summary>
    public long MonotonicOffset => monotonicOffset;

    /// <summary>The guest's monotonic clock in nanoseconds: never goes backwards, also across capture and restore.</summary>
    public long MonotonicNanos => TicksToNanos(Stopwatch.GetTimestamp() - monotonicBase) + monotonicOffset;

    private static long TicksToNanos(long ticks) =>
        Stopwatch.Frequency == 1_000_000_000 ? ticks : (long)(ticks * (1_000_000_000.0 / Stopwatch.Frequency));

    internal StdioChannel StdioChannel(int index) => stdio[index];

    // ---------------------------------------------------------------------------------------------------------
    // Descriptor table
    // ---------------------------------------------------------------------------------------------------------

    internal FdEntry? Get(int fd) => (uint)fd < (uint)fds.Count ? fds[fd] : null;

    internal int Allocate(FdEntry entry)
    {
        for (var fd = Math.Min(nextFd, fds.Count); fd < fds.Count; fd++)
        {
            if (fds[fd] is null)
            {
                fds[fd] = entry;
                return fd;
            }
        }
        for (var fd = 0; fd < Math.Min(nextFd, fds.Count); fd++)
        {
            if (fds[fd] is null)
            {
                fds[fd] = entry;
                return fd;
            }
        }
        fds.Add(entry);
        return fds.Count - 1;
    }

    /// <summary>Removes <paramref name="fd"/> from the table and releases its host resources.</summary>
    internal Errno Close(int fd)
    {
        var e = Get(fd);
        if (e is null) return Errno.BadF;
        fds[fd] = null;
        Release(e);
        return Errno.Success;
    }

    private static void Release(FdEntry e)
    {
        if (e.Stdio is not null)
        {
            e.Stdio.Flush();
            return;
        }
        if (e.HostFd >= 0) Marshalling.CloseQuietly(e.HostFd);
    }

    internal Errno Renumber(int from, int to)
    {
        var src = Get(from);
        var dst = Get(to);
        if (src is null || dst is null) return Errno.BadF;
        if (from == to) return Errno.Success;
        Release(dst);
        fds[to] = src;
        fds[from] = null;
        return Errno.Success;
    }

    private FdEntry NewStdio(int index)
    {
        var ch = stdio[index];
        var type = FileType.CharacterDevice;
        var rights = Rights.Stream;
        if (ch.IsHostFd)
        {
            Sys.Statx st;
            var empty = (byte)0;
            if (Sys.statx(ch.HostFd, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) == 0)
            {
                type = TypeOfMode(st.Mode);
                if (type == FileType.RegularFile) rights = Rights.RegularFile;
            }
        }
        else
        {
            type = FileType.Unknown;
        }
        return new FdEntry
        {
            Kind = WasiFdKind.Stdio,
            Stdio = ch,
            HostFd = ch.HostFd,
            Type = type,
            Read = index == 0,
            Write = index != 0,
            Base = rights & (index == 0 ? ~Rights.FdWrite : ~Rights.FdRead),
            Inheriting = Rights.None,
        };
    }

    private static WasiPreopenState CanonicalPreopen(WasiPreopen p)
    {
        if (string.IsNullOrEmpty(p.GuestPath)) throw new WasiConfigurationException("a preopen needs a guest path");
        var full = Path.GetFullPath(p.HostPath);
        if (!Directory.Exists(full)) throw new WasiConfigurationException($"preopen '{p.HostPath}' is not a directory");
        var real = new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        return new WasiPreopenState(p.GuestPath, Path.TrimEndingDirectorySeparator(real) is { Length: > 0 } t ? t : "/");
    }

    private FdEntry OpenPreopen(int index)
    {
        var p = preopens[index];
        var fd = OpenHostDirectory(p.HostPath);
        return new FdEntry
        {
            Kind = WasiFdKind.Preopen,
            HostFd = fd,
            PreopenIndex = index,
            GuestPath = ".",
            Type = FileType.Directory,
            Read = true,
            Base = Rights.Directory,
            Inheriting = Rights.All,
        };
    }

    private static int OpenHostDirectory(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            var fd = Sys.OpenAt2(Sys.AT_FDCWD, p, Sys.O_RDONLY | Sys.O_DIRECTORY, 0, 0);
            if (fd < 0) throw new WasiConfigurationException($"cannot open directory '{path}': {Marshalling.LastError()}");
            return fd;
        }
    }

    internal static FileType TypeOfMode(int mode) => (mode & Sys.S_IFMT) switch
    {
        Sys.S_IFREG => FileType.RegularFile,
        Sys.S_IFDIR => FileType.Directory,
        Sys.S_IFLNK => FileType.SymbolicLink,
        Sys.S_IFCHR => FileType.CharacterDevice,
        Sys.S_IFBLK => FileType.BlockDevice,
        Sys.S_IFSOCK => FileType.SocketStream,
        _ => FileType.Unknown,
    };

    // ---------------------------------------------------------------------------------------------------------
    // Blocking waits that a freeze interrupts
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// poll(2) on <paramref name="set"/> (whose last slot is reserved for the freeze event) with a timeout in ms
    /// (−1: none). Returns the poll result over the first <paramref name="count"/> descriptors, or −2 when a freeze
    /// was requested: then the guest is told to unwind and the caller must return without side effects.
    /// </summary>
    internal int PollInterruptible(Sys.PollFd* set, int count, int timeoutMs, string function)
    {
        var guest = Guest;
        if (guest is null)
        {
            int r;
            do r = Sys.poll(set, (nuint)count, timeoutMs); while (r < 0 && Sys.Errno == Sys.EINTR);
            return r;
        }
        var token = guest.FreezeToken;
        if (token.IsCancellationRequested)
        {
            guest.UnwindFromHost();
            return -2;
        }
        if (freezeEventFd < 0)
        {
            freezeEventFd = Sys.eventfd(0, Sys.EFD_CLOEXEC | Sys.EFD_NONBLOCK);
            if (freezeEventFd < 0) throw new IOException("eventfd failed: " + Marshalling.LastError());
        }
        set[count] = new Sys.PollFd { Fd = freezeEventFd, Events = Sys.POLLIN };
        using (token.Register(static s => ((WasiContext)s!).SignalFreeze(), this))
        {
            if (timeoutMs != 0) Blocking?.Invoke(function);
            while (true)
            {
                var r = Sys.poll(set, (nuint)(count + 1), timeoutMs);
                if (r < 0 && Sys.Errno == Sys.EINTR) continue;
                if (r < 0) return r;
                if ((set[count].Revents & Sys.POLLIN) != 0 || token.IsCancellationRequested)
                {
                    DrainFreezeEvent();
                    guest.UnwindFromHost();
                    return -2;
                }
                return r;
            }
        }
    }

    private void SignalFreeze()
    {
        ulong one = 1;
        _ = Sys.write(freezeEventFd, (byte*)&one, 8);
    }

    private void DrainFreezeEvent()
    {
        ulong value;
        _ = Sys.read(freezeEventFd, (byte*)&value, 8);
    }

    /// <summary>
    /// Raised on the guest's thread when a WASI call is about to block (the function's name), after the freeze
    /// event is armed: from then on <see cref="InstanceBase.RequestFreeze"/> interrupts the wait. For monitoring
    /// and tests.
    /// </summary>
    public event Action<string>? Blocking;

    /// <summary>Waits until <paramref name="hostFd"/> is readable; false when a freeze interrupted the wait.</summary>
    internal bool WaitReadable(int hostFd)
    {
        var set = stackalloc Sys.PollFd[2];
        set[0] = new Sys.PollFd { Fd = hostFd, Events = Sys.POLLIN };
        // Fast path: data (or end of input) is already there.
        if (Sys.poll(set, 1, 0) > 0) return true;
        // The guest is about to wait: whatever it printed (a prompt) must be visible first.
        FlushOutput();
        return PollInterruptible(set, 1, -1, "fd_read") != -2;
    }

    /// <summary>Writes buffered stdout/stderr to the host.</summary>
    public void FlushOutput()
    {
        foreach (var ch in stdio) ch.Flush();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Capture and restore
    // ---------------------------------------------------------------------------------------------------------

    /// <summary>
    /// The whole WASI state as plain data. Buffered output is flushed first (it has been produced). Call it while
    /// the guest is frozen (not inside a WASI call).
    /// </summary>
    public WasiState Capture()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        FlushOutput();
        var list = new List<WasiFdState>();
        for (var fd = 0; fd < fds.Count; fd++)
        {
            var e = fds[fd];
            if (e is null) continue;
            var hostPath = "";
            var guestPath = e.GuestPath;
            long position = 0;
            if (e.Kind != WasiFdKind.Stdio)
            {
                hostPath = Sys.PathOf(e.HostFd) ?? "";
                var root = preopens[e.PreopenIndex].HostPath;
                if (hostPath.Length > 0 && !hostPath.EndsWith(" (deleted)", StringComparison.Ordinal))
                {
                    var rel = Path.GetRelativePath(root, hostPath);
                    if (rel != ".." && !rel.StartsWith("../", StringComparison.Ordinal) && !Path.IsPathRooted(rel)) guestPath = rel;
                }
                if (e.Kind == WasiFdKind.File)
                {
                    position = Sys.lseek(e.HostFd, 0, Sys.SEEK_CUR);
                    if (position < 0) position = 0;
                }
            }
            list.Add(new WasiFdState
            {
                Fd = fd,
                Kind = e.Kind,
                StdioIndex = e.Stdio?.Index ?? -1,
                PreopenIndex = e.PreopenIndex,
                GuestPath = guestPath,
                HostPath = hostPath,
                Read = e.Read,
                Write = e.Write,
                Flags = e.Flags,
                RightsBase = e.Base,
                RightsInheriting = e.Inheriting,
                Position = position,
                DirEntries = e.Listing is { } l ? [.. l] : [],
            });
        }
        return new WasiState
        {
            Args = [.. Args],
            Env = [.. Env],
            Preopens = [.. preopens],
            Fds = list,
            NextFd = nextFd,
            MonotonicNanos = MonotonicNanos,
        };
    }

    /// <summary>
    /// Rebuilds a context from <paramref name="state"/>: reopens every file beneath its preopen at the recorded
    /// position, and continues the monotonic clock from the captured value. <paramref name="options"/> supplies
    /// stdio; its preopens, if any, must map every captured guest directory to the same host path.
    /// Throws <see cref="WasiRestoreException"/> when that is not possible.
    /// </summary>
    public static WasiContext Restore(WasiState state, WasiOptions options)
    {
        ArgumentNullException.ThrowIfNull(state);
        var ctx = new WasiContext(options with { Args = state.Args, Env = state.Env, Preopens = [] }, restoring: true);
        try
        {
            ctx.RestoreFrom(state, options);
            return ctx;
        }
        catch
        {
            ctx.Dispose();
            throw;
        }
    }

    private void RestoreFrom(WasiState state, WasiOptions options)
    {
        var given = options.Preopens.Select(CanonicalPreopen).ToList();
        var restored = new WasiPreopenState[state.Preopens.Count];
        for (var i = 0; i < restored.Length; i++)
        {
            var p = state.Preopens[i];
            if (given.Count > 0)
            {
                var match = given.FirstOrDefault(g => g.GuestPath == p.GuestPath)
                    ?? throw new WasiRestoreException($"the snapshot's preopen '{p.GuestPath}' is not configured on this host");
                if (match.HostPath != p.HostPath)
                {
                    throw new WasiRestoreException($"preopen '{p.GuestPath}' maps to '{match.HostPath}' here but to '{p.HostPath}' in the snapshot");
                }
            }
            if (!Directory.Exists(p.HostPath)) throw new WasiRestoreException($"preopen '{p.GuestPath}': host directory '{p.HostPath}' does not exist");
            restored[i] = p;
        }
        preopens = restored;

        var rootFds = new int[restored.Length];
        Array.Fill(rootFds, -1);
        try
        {
            foreach (var f in state.Fds.OrderBy(f => f.Fd))
            {
                if (f.Fd < 0 || f.Fd > 1 << 20) throw new WasiRestoreException($"descriptor number {f.Fd} is out of range");
                while (fds.Count <= f.Fd) fds.Add(null);
                if (fds[f.Fd] is not null) throw new WasiRestoreException($"descriptor {f.Fd} appears twice");
                fds[f.Fd] = RestoreEntry(f, restored, rootFds);
            }
        }
        finally
        {
            foreach (var fd in rootFds) Marshalling.CloseQuietly(fd);
        }
        nextFd = state.NextFd;
        monotonicOffset = state.MonotonicNanos;
        monotonicBase = Stopwatch.GetTimestamp();
    }

    private FdEntry RestoreEntry(WasiFdState f, WasiPreopenState[] roots, int[] rootFds)
    {
        var entry = new FdEntry
        {
            Kind = f.Kind,
            PreopenIndex = f.PreopenIndex,
            GuestPath = f.GuestPath,
            Read = f.Read,
            Write = f.Write,
            Flags = f.Flags,
            Base = f.RightsBase,
            Inheriting = f.RightsInheriting,
            Listing = f.DirEntries.Count > 0 ? [.. f.DirEntries] : null,
        };
        if (f.Kind == WasiFdKind.Stdio)
        {
            if (f.StdioIndex is < 0 or > 2) throw new WasiRestoreException($"descriptor {f.Fd}: bad stdio index {f.StdioIndex}");
            var fresh = NewStdio(f.StdioIndex);
            entry.Stdio = fresh.Stdio;
            entry.HostFd = fresh.HostFd;
            entry.Type = fresh.Type;
            return entry;
        }
        if ((uint)f.PreopenIndex >= (uint)roots.Length) throw new WasiRestoreException($"descriptor {f.Fd}: bad preopen index {f.PreopenIndex}");
        if (rootFds[f.PreopenIndex] < 0) rootFds[f.PreopenIndex] = OpenHostDirectory(roots[f.PreopenIndex].HostPath);
        var root = rootFds[f.PreopenIndex];
        var where = $"{roots[f.PreopenIndex].GuestPath}/{f.GuestPath}";
        if (f.Kind == WasiFdKind.Preopen || f.Kind == WasiFdKind.Directory)
        {
            entry.HostFd = OpenBeneathForRestore(root, f.GuestPath, Sys.O_RDONLY | Sys.O_DIRECTORY, where);
            entry.Type = FileType.Directory;
            return entry;
        }
        var access = f.Read && f.Write ? Sys.O_RDWR : f.Write ? Sys.O_WRONLY : Sys.O_RDONLY;
        var flags = access | Sys.O_NOCTTY | HostFlags(f.Flags);
        entry.HostFd = OpenBeneathForRestore(root, f.GuestPath, flags, where);
        Sys.Statx st;
        var empty = (byte)0;
        entry.Type = Sys.statx(entry.HostFd, &empty, Sys.AT_EMPTY_PATH, Sys.STATX_BASIC_STATS, &st) == 0 ? TypeOfMode(st.Mode) : FileType.Unknown;
        if (entry.Type == FileType.RegularFile && Sys.lseek(entry.HostFd, f.Position, Sys.SEEK_SET) < 0)
        {
            throw new WasiRestoreException($"descriptor {f.Fd} ({where}): cannot seek to {f.Position}: {Marshalling.LastError()}");
        }
        return entry;
    }

    private static int OpenBeneathForRestore(int root, string relative, int flags, string where)
    {
        var bytes = Encoding.UTF8.GetBytes((relative.Length == 0 ? "." : relative) + "\0");
        fixed (byte* p = bytes)
        {
            var fd = Sys.OpenAt2(root, p, flags, 0, Sys.RESOLVE_BENEATH | Sys.RESOLVE_NO_MAGICLINKS);
            if (fd < 0)
            {
                var errno = Sys.Errno;
                var why = errno == 2 ? "it no longer exists" : errno == Sys.EXDEV ? "it is no longer inside its preopen" : Marshalling.LastError();
                throw new WasiRestoreException($"cannot reopen {where}: {why}");
            }
            return fd;
        }
    }

    internal static int HostFlags(FdFlags f)
    {
        var flags = 0;
        if ((f & FdFlags.Append) != 0) flags |= Sys.O_APPEND;
        if ((f & FdFlags.NonBlock) != 0) flags |= Sys.O_NONBLOCK;
        if ((f & FdFlags.Dsync) != 0) flags |= Sys.O_DSYNC;
        if ((f & (FdFlags.Sync | FdFlags.Rsync)) != 0) flags |= Sys.O_SYNC;
        return flags;
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var e in fds)
        {
            if (e is not null) Release(e);
        }
        fds.Clear();
        foreach (var ch in stdio) ch.Dispose();
        if (freezeEventFd >= 0) Sys.close(freezeEventFd);
        freezeEventFd = -1;
    }
}
