namespace Ferry.Wasm.Wasi;

/// <summary>
/// Sockets. Preview1 can only use sockets the host passes in (it has no socket/connect/bind), and Ferry's host
/// passes none, so every descriptor a guest can name is not a socket: these return NoSys for an open descriptor
/// (the feature is not provided) and BadF for a closed one.
/// </summary>
public sealed partial class WasiHost
{
    /// <summary>sock_accept(fd, flags: fdflags u16, fd_out: *u32).</summary>
    private int SockAccept(int fd, int flags, int fdOut) => SockUnsupported(fd);

    /// <summary>sock_recv(fd, ri_data: *iovec, ri_data_len, ri_flags: u16, ro_datalen_out: *u32, ro_flags_out: *u16).</summary>
    private int SockRecv(int fd, int iovs, int iovsLen, int flags, int lengthOut, int flagsOut) => SockUnsupported(fd);

    /// <summary>sock_send(fd, si_data: *ciovec, si_data_len, si_flags: u16, so_datalen_out: *u32).</summary>
    private int SockSend(int fd, int iovs, int iovsLen, int flags, int lengthOut) => SockUnsupported(fd);

    /// <summary>sock_shutdown(fd, how: sdflags u8).</summary>
    private int SockShutdown(int fd, int how) => SockUnsupported(fd);

    private int SockUnsupported(int fd) => Context.Get(fd) is null ? Fail(Errno.BadF) : Fail(Errno.NoSys);
}
