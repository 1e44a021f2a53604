using System.Buffers.Binary;
using System.Text;

namespace Ferry.Enclave.Confidential;

/// <summary>Thrown by <see cref="WireReader"/> on short or malformed input; decoders turn it into their typed refusal.</summary>
internal sealed class WireFormatException(string message) : Exception(message);

/// <summary>Little-endian writer into a growable buffer, for the small formats (quotes, handshake messages, headers).</summary>
internal sealed class WireWriter
{
    private byte[] buffer;
    private int length;

    public WireWriter(int capacity = 256) => buffer = new byte[capacity];

    public int Length => length;

    public ReadOnlySpan<byte> Written => buffer.AsSpan(0, length);

    public byte[] ToArray() => buffer.AsSpan(0, length).ToArray();

    private Span<byte> Take(int n)
    {
        if (length + n > buffer.Length) Array.Resize(ref buffer, Math.Max(buffer.Length * 2, length + n));
        var span = buffer.AsSpan(length, n);
        length += n;
        return span;
    }

    public void Bytes(ReadOnlySpan<byte> data) => data.CopyTo(Take(data.Length));
    public void U8(byte v) => Take(1)[0] = v;
    public void U16(ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), v);
    public void U32(uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), v);
    public void U64(ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), v);
    public void I64(long v) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), v);

    /// <summary>u16 length, then the bytes.</summary>
    public void Blob16(ReadOnlySpan<byte> data)
    {
        if (data.Length > ushort.MaxValue) throw new ArgumentException("field longer than 65535 bytes", nameof(data));
        U16((ushort)data.Length);
        Bytes(data);
    }

    /// <summary>u32 length, then the bytes.</summary>
    public void Blob32(ReadOnlySpan<byte> data)
    {
        U32((uint)data.Length);
        Bytes(data);
    }

    /// <summary>u32 length, then strict UTF-8 (lone surrogates are refused, so distinct strings never encode alike).</summary>
    public void String(string s) => Blob32(Strict.GetBytes(s));

    internal static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}

/// <summary>Little-endian reader over a span that throws <see cref="WireFormatException"/> when input runs short.</summary>
internal ref struct WireReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> data = data;
    private int offset;

    public readonly int Offset => offset;
    public readonly int Remaining => data.Length - offset;

    private ReadOnlySpan<byte> Take(int n, string what)
    {
        if (n < 0 || n > data.Length - offset) throw new WireFormatException($"input ends inside {what} (offset {offset}, need {n} bytes, {data.Length - offset} left)");
        var s = data.Slice(offset, n);
        offset += n;
        return s;
    }

    public ReadOnlySpan<byte> Bytes(int n, string what) => Take(n, what);
    public byte U8(string what) => Take(1, what)[0];
    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
    public long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));

    public ReadOnlySpan<byte> Blob16(string what, int max)
    {
        int n = U16(what + " length");
        if (n > max) throw new WireFormatException($"{what} is {n} bytes, more than the {max} allowed");
        return Take(n, what);
    }

    public ReadOnlySpan<byte> Blob32(string what, int max)
    {
        var n = U32(what + " length");
        if (n > (uint)max) throw new WireFormatException($"{what} is {n} bytes, more than the {max} allowed");
        return Take((int)n, what);
    }

    public readonly void End(string what)
    {
        if (offset != data.Length) throw new WireFormatException($"{data.Length - offset} unexpected bytes after the {what}");
    }
}
