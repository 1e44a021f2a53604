using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Ferry.Agent.Streams;

/// <summary>
/// How a migration stream reaches an incoming runtime over its <c>data.sock</c>. The agent connects and sends one
/// byte first: <see cref="HandedOver"/> carries the source's TCP connection itself as an <c>SCM_RIGHTS</c> file
/// descriptor (the runtime then reads and writes the source's socket directly and the agent is out of the data
/// path); <see cref="Relayed"/> says the agent pipes the stream through this Unix connection (the fallback, see
/// <see cref="AgentServer"/>). Linux only, 64-bit (the layout of <c>msghdr</c> and <c>cmsghdr</c> below).
/// </summary>
public static partial class StreamHandoff
{
    /// <summary>The first byte of a handed-over stream; the connection's descriptor rides with it.</summary>
    public const byte HandedOver = (byte)'H';

    /// <summary>The first byte of a relayed stream; the stream's bytes follow on the same connection.</summary>
    public const byte Relayed = (byte)'R';

    /// <summary>Passes <paramref name="connection"/>'s descriptor to the peer of <paramref name="unix"/>. The caller may close its copy afterwards.</summary>
    public static async Task HandOverAsync(Socket unix, Socket connection, CancellationToken ct)
    {
        // A fresh connection's send buffer is empty, so the one byte goes at once; EAGAIN would mean a peer that
        // reads nothing, which is given a little time and then refused.
        for (var attempt = 0; ; attempt++)
        {
            var errno = SendDescriptor(unix, (int)connection.SafeHandle.DangerousGetHandle());
            if (errno == 0) return;
            if (errno != EAGAIN || attempt >= 100) throw new IOException($"cannot hand the migration stream to the runtime: {Marshal.GetPInvokeErrorMessage(errno)}");
            await Task.Delay(10, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Tells the peer of <paramref name="unix"/> that the stream's bytes follow on this connection.</summary>
    public static async Task MarkRelayedAsync(Socket unix, CancellationToken ct) =>
        await unix.SendAsync(new[] { Relayed }, SocketFlags.None, ct).ConfigureAwait(false);

    /// <summary>Accepts the next stream on an incoming runtime's data socket: the source's own connection if it was handed over, else the relayed one.</summary>
    public static async Task<Stream> AcceptAsync(Socket listener, CancellationToken ct)
    {
        var unix = await listener.AcceptAsync(ct).ConfigureAwait(false);
        try
        {
            return await ReceiveAsync(unix, ct).ConfigureAwait(false);
        }
        catch
        {
            unix.Dispose();
            throw;
        }
    }

    /// <summary>Reads the first byte of an agent's connection and returns the stream it announces (owning what it needs; <paramref name="unix"/> is disposed if the stream was handed over).</summary>
    public static async Task<Stream> ReceiveAsync(Socket unix, CancellationToken ct)
    {
        while (true)
        {
            // A zero-byte receive completes once data is waiting, without taking any: the descriptor must be taken
            // together with its byte by recvmsg, never by an ordinary read (which would drop it).
            await unix.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, ct).ConfigureAwait(false);
            var (errno, received, marker, descriptor) = ReceiveDescriptor(unix);
            if (errno == EAGAIN || errno == EINTR) continue;
            if (errno != 0) throw new IOException($"cannot read the stream's first byte from the agent: {Marshal.GetPInvokeErrorMessage(errno)}");
            if (received == 0)
            {
                CloseIfOpen(descriptor);
                throw new IOException("the agent closed the stream before its first byte");
            }
            if (marker == HandedOver && descriptor >= 0)
            {
                var socket = new Socket(new SafeSocketHandle(descriptor, ownsHandle: true));
                unix.Dispose();
                return new NetworkStream(socket, ownsSocket: true);
            }
            CloseIfOpen(descriptor);
            if (marker == Relayed) return new NetworkStream(unix, ownsSocket: true);
            throw new IOException(marker == HandedOver
                ? "the agent announced a handed-over stream but passed no connection"
                : $"the agent's stream starts with 0x{marker:x2}, neither a handed-over nor a relayed stream");
        }
    }

    private static void CloseIfOpen(int descriptor)
    {
        if (descriptor >= 0) _ = Close(descriptor);
    }

    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int SOL_SOCKET = 1;
    private const int SCM_RIGHTS = 1;
    private const int MSG_CTRUNC = 0x8;
    private const int MSG_DONTWAIT = 0x40;
    private const int MSG_NOSIGNAL = 0x4000;
    private const int MSG_CMSG_CLOEXEC = 0x40000000;

    // CMSG_SPACE(sizeof(int)) on LP64: a 16-byte header, the int, padding to 8.
    private const int ControlBytes = 24;
    private const int ControlHeaderBytes = 16;

    private static unsafe int SendDescriptor(Socket unix, int descriptor)
    {
        byte marker = HandedOver;
        var control = stackalloc byte[ControlBytes];
        new Span<byte>(control, ControlBytes).Clear();
        var header = (ControlMessageHeader*)control;
        header->Length = ControlHeaderBytes + sizeof(int);
        header->Level = SOL_SOCKET;
        header->Type = SCM_RIGHTS;
        *(int*)(control + ControlHeaderBytes) = descriptor;
        var iov = new IoVector { Base = &marker, Length = 1 };
        var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlBytes };
        while (true)
        {
            if (SendMessage((int)unix.SafeHandle.DangerousGetHandle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) return 0;
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR) return errno;
        }
    }

    private static unsafe (int Errno, int Received, byte Marker, int Descriptor) ReceiveDescriptor(Socket unix)
    {
        byte marker = 0;
        var control = stackalloc byte[ControlBytes];
        new Span<byte>(control, ControlBytes).Clear();
        var iov = new IoVector { Base = &marker, Length = 1 };
        var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlBytes };
        var n = ReceiveMessage((int)unix.SafeHandle.DangerousGetHandle(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) return (Marshal.GetLastPInvokeError(), 0, 0, -1);
        var descriptor = -1;
        var header = (ControlMessageHeader*)control;
        if (message.ControlLength >= ControlHeaderBytes + sizeof(int) && header->Level == SOL_SOCKET && header->Type == SCM_RIGHTS
            && header->Length >= ControlHeaderBytes + sizeof(int))
        {
            descriptor = *(int*)(control + ControlHeaderBytes);
        }
        if ((message.Flags & MSG_CTRUNC) != 0)
        {
            // More descriptors than one were sent: not an agent of ours. Close what arrived and refuse.
            CloseIfOpen(descriptor);
            return (0, (int)n, 0, -1);
        }
        return (0, (int)n, marker, descriptor);
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVector
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Iov;
        public nuint IovLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ControlMessageHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendMessage(int socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static unsafe partial nint ReceiveMessage(int socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);
}
