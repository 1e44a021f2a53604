using System.Buffers;
using System.Buffers.Binary;

namespace Ferry.Migration.Protocol;

/// <summary>A received frame; its payload is pooled and must be disposed.</summary>
public sealed class Frame : IDisposable
{
    private byte[]? buffer;

    internal Frame(MessageType type, byte[] buffer, int length)
    {
        Type = type;
        this.buffer = buffer;
        Length = length;
    }

    public MessageType Type { get; }
    public int Length { get; }
    public ReadOnlySpan<byte> Payload => buffer.AsSpan(0, Length);
    /// <summary>The payload for a consumer that works on it in place (e.g. decrypts a page batch where it lies).</summary>
    public Span<byte> WritablePayload => buffer.AsSpan(0, Length);
    public ReadOnlyMemory<byte> Memory => buffer.AsMemory(0, Length);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}

/// <summary>The peer broke the protocol or the stream ended early.</summary>
public sealed class ProtocolException(string message) : Exception(message);

/// <summary>
/// Length-prefixed frames over one stream: [u32 payload length][u16 type][u16 flags][payload]. Writes from
/// several tasks are serialised; payloads are bounded so a hostile peer cannot make us allocate without limit.
/// </summary>
public sealed class FrameStream : IAsyncDisposable
{
    public const int HeaderBytes = 8;
    public const int MaxPayload = 64 << 20;

    private readonly Stream stream;
    private readonly SemaphoreSlim writeLock = new(1, 1);
    private readonly byte[] readHeader = new byte[HeaderBytes];
    private long bytesWritten;
    private long bytesRead;

    public FrameStream(Stream stream) => this.stream = stream;

    public long BytesWritten => Interlocked.Read(ref bytesWritten);
    public long BytesRead => Interlocked.Read(ref bytesRead);

    public async ValueTask WriteAsync(MessageType type, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        if (payload.Length > MaxPayload) throw new ArgumentException("payload too large");
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteInt32LittleEndian(header, payload.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)type);
        await writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(header, ct).ConfigureAwait(false);
            if (payload.Length > 0) await stream.WriteAsync(payload, ct).ConfigureAwait(false);
            await stream.FlushAsync(ct).ConfigureAwait(false);
            Interlocked.Add(ref bytesWritten, HeaderBytes + payload.Length);
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>Reads the next frame; null at a clean end of stream (between frames).</summary>
    public async ValueTask<Frame?> ReadAsync(CancellationToken ct)
    {
        var got = await stream.ReadAtLeastAsync(readHeader, HeaderBytes, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        if (got == 0) return null;
        if (got < HeaderBytes) throw new ProtocolException("stream ended inside a frame header");
        var length = BinaryPrimitives.ReadInt32LittleEndian(readHeader);
        var type = (MessageType)BinaryPrimitives.ReadUInt16LittleEndian(readHeader.AsSpan(4));
        if (length < 0 || length > MaxPayload) throw new ProtocolException($"frame of {length} bytes exceeds the limit");
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            await stream.ReadExactlyAsync(buffer.AsMemory(0, length), ct).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw new ProtocolException("stream ended inside a frame");
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
        Interlocked.Add(ref bytesRead, HeaderBytes + length);
        return new Frame(type, buffer, length);
    }

    /// <summary>Reads a frame that must be of <paramref name="expected"/> type (an Abort becomes an exception).</summary>
    public async ValueTask<Frame> ExpectAsync(MessageType expected, CancellationToken ct)
    {
        var f = await ReadAsync(ct).ConfigureAwait(false) ?? throw new ProtocolException($"stream ended while waiting for {expected}");
        if (f.Type == expected) return f;
        using (f)
        {
            if (f.Type == MessageType.Abort) throw new MigrationAbortedException(System.Text.Encoding.UTF8.GetString(f.Payload));
            throw new ProtocolException($"expected {expected}, got {f.Type}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stream.DisposeAsync().ConfigureAwait(false);
        writeLock.Dispose();
    }
}

/// <summary>The peer abandoned the migration.</summary>
public sealed class MigrationAbortedException(string reason) : Exception($"the peer aborted the migration: {reason}")
{
    public string Reason { get; } = reason;
}
