namespace Ferry.Migration.Protocol;

/// <summary>
/// Carries the opaque messages of an attestation handshake over a migration's control stream (as
/// <see cref="MessageType.Handshake"/> frames). The driver only ferries bytes: what they mean, and every decision,
/// belongs to the trusted runtime that runs the handshake.
/// </summary>
public interface IHandshakeChannel
{
    Task SendAsync(ReadOnlyMemory<byte> message, CancellationToken ct);

    /// <summary>The peer's next handshake message; an Abort from the peer becomes <see cref="MigrationAbortedException"/>.</summary>
    Task<byte[]> ReceiveAsync(CancellationToken ct);
}

internal sealed class FrameHandshakeChannel(FrameStream control) : IHandshakeChannel
{
    /// <summary>Handshake messages carry quotes (a few hundred bytes); anything much larger is not one.</summary>
    private const int MaxMessage = 256 << 10;

    public async Task SendAsync(ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        if (message.Length > MaxMessage) throw new ArgumentException("handshake message too large");
        await control.WriteAsync(MessageType.Handshake, message, ct).ConfigureAwait(false);
    }

    public async Task<byte[]> ReceiveAsync(CancellationToken ct)
    {
        using var f = await control.ExpectAsync(MessageType.Handshake, ct).ConfigureAwait(false);
        if (f.Length > MaxMessage) throw new ProtocolException($"a handshake message of {f.Length} bytes");
        return f.Payload.ToArray();
    }
}
