using System.Runtime.InteropServices;

namespace Ferry.Wasm.Wasi;

/// <summary>
/// One standard stream as the WASI host uses it. Output is buffered (stdout) or written through (stderr); input
/// from a host descriptor waits in poll(2) together with the context's freeze event, so it can be abandoned
/// without consuming anything.
/// </summary>
internal sealed unsafe class StdioChannel : IDisposable
{
    private readonly WasiStdio source;
    private readonly byte[]? buffer;
    private int buffered;

    public StdioChannel(WasiStdio source, int index, int bufferBytes)
    {
        this.source = source;
        Index = index;
        if (bufferBytes > 0) buffer = GC.AllocateUninitializedArray<byte>(bufferBytes, pinned: true);
    }

    public int Index { get; }
    public int HostFd => source.HostFd;
    public Stream? Stream => source.Stream;
    public bool IsHostFd => source.HostFd >= 0;

    /// <summary>Writes (or buffers) all of <paramref name="data"/>; returns an errno on a host write failure.</summary>
    public Errno Write(ReadOnlySpan<byte> data)
    {
        if (buffer is not null)
        {
            if (data.Length <= buffer.Length - buffered)
            {
                data.CopyTo(buffer.AsSpan(buffered));
                buffered += data.Length;
                return Errno.Success;
            }
            var e = Flush();
            if (e != Errno.Success) return e;
            if (data.Length <= buffer.Length)
            {
                data.CopyTo(buffer);
                buffered = data.Length;
                return Errno.Success;
            }
        }
        return WriteThrough(data);
    }

    public Errno Flush()
    {
        if (buffered == 0)
        {
            if (!IsHostFd) source.Stream!.Flush();
            return Errno.Success;
        }
        var e = WriteThrough(buffer.AsSpan(0, buffered));
        buffered = 0;
        return e;
    }

    private Errno WriteThrough(ReadOnlySpan<byte> data)
    {
        if (!IsHostFd)
        {
            try
            {
                source.Stream!.Write(data);
                source.Stream.Flush();
                return Errno.Success;
            }
            catch (IOException)
            {
                return Errno.Io;
            }
        }
        fixed (byte* p = data)
        {
            var done = 0;
            while (done < data.Length)
            {
                var n = Sys.write(source.HostFd, p + done, data.Length - done);
                if (n < 0)
                {
                    var errno = Sys.Errno;
                    if (errno == Sys.EINTR) continue;
                    if (errno == Sys.EAGAIN)
                    {
                        var pfd = new Sys.PollFd { Fd = source.HostFd, Events = Sys.POLLOUT };
                        Sys.poll(&pfd, 1, -1);
                        continue;
                    }
                    return ErrnoMapping.FromLinux(errno);
                }
                done += (int)n;
            }
        }
        return Errno.Success;
    }

    /// <summary>
    /// Reads up to <paramref name="length"/> bytes. Returns the count (0 at end of input), −1 if a freeze
    /// interrupted the wait (nothing consumed), or −2 with <paramref name="error"/> set.
    /// </summary>
    public long Read(byte* destination, int length, WasiContext context, out Errno error)
    {
        error = Errno.Success;
        if (!IsHostFd)
        {
            try
            {
                return source.Stream!.Read(new Span<byte>(destination, length));
            }
            catch (IOException)
            {
                error = Errno.Io;
                return -2;
            }
        }
        if (!context.WaitReadable(source.HostFd)) return -1;
        while (true)
        {
            var n = Sys.read(source.HostFd, destination, length);
            if (n >= 0) return n;
            var errno = Sys.Errno;
            if (errno == Sys.EINTR) continue;
            if (errno == Sys.EAGAIN)
            {
                if (!context.WaitReadable(source.HostFd)) return -1;
                continue;
            }
            error = ErrnoMapping.FromLinux(errno);
            return -2;
        }
    }

    public void Dispose()
    {
        Flush();
        if (source.OwnsFd && source.HostFd >= 0) Sys.close(source.HostFd);
    }
}

/// <summary>An open WASI descriptor.</summary>
internal sealed class FdEntry
{
    public WasiFdKind Kind;
    /// <summary>Host descriptor for files and directories (and host-fd stdio); −1 for Stream stdio.</summary>
    public int HostFd = -1;
    public StdioChannel? Stdio;
    public int PreopenIndex = -1;
    /// <summary>Lexical path relative to the preopen, as opened (capture refines it from /proc).</summary>
    public string GuestPath = ".";
    public FileType Type;
    public bool Read, Write;
    public FdFlags Flags;
    public Rights Base, Inheriting;
    public List<WasiDirEntryState>? Listing;

    public bool IsDirectory => Kind is WasiFdKind.Directory or WasiFdKind.Preopen;
}

internal static class Marshalling
{
    public static void CloseQuietly(int fd)
    {
        if (fd > 2) _ = Sys.close(fd);
    }

    public static string LastError() => Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
}
