using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace Ferry.Wasm.Binary;

/// <summary>
/// Allocation-free reader of binary-format primitives over a span. Positions are relative to the span;
/// <see cref="FileOffset"/> adds the span's offset in the module file so errors name the real byte.
/// </summary>
public ref struct WasmReader
{
    private readonly ReadOnlySpan<byte> data;
    private readonly int baseOffset;
    private int pos;

    public WasmReader(ReadOnlySpan<byte> data, int baseOffset, string section)
    {
        this.data = data;
        this.baseOffset = baseOffset;
        Section = section;
    }

    public string Section { get; set; }
    public readonly int Position => pos;
    public readonly int FileOffset => baseOffset + pos;
    public readonly int Remaining => data.Length - pos;
    public readonly bool AtEnd => pos >= data.Length;

    public void Seek(int position) => pos = position;

    [DoesNotReturn]
    public readonly void Fail(string reason) => throw new MalformedModuleException(reason, FileOffset, Section);

    [DoesNotReturn]
    public readonly void FailAt(string reason, int position) => throw new MalformedModuleException(reason, baseOffset + position, Section);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte ReadByte()
    {
        if ((uint)pos >= (uint)data.Length) Fail(EndMessage);
        return data[pos++];
    }

    /// <summary>What running out of bytes means here; the spec distinguishes the file's end from a section's.</summary>
    public string EndMessage { get; set; } = "unexpected end";

    public readonly byte PeekByte()
    {
        if ((uint)pos >= (uint)data.Length) Fail(EndMessage);
        return data[pos];
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > data.Length - pos) Fail(EndMessage);
        var s = data.Slice(pos, count);
        pos += count;
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadU32()
    {
        if (pos < data.Length && data[pos] < 0x80) return data[pos++];
        return ReadU32Slow();
    }

    private uint ReadU32Slow()
    {
        uint result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) Fail("integer representation too long");
                if ((b & 0x70) != 0) Fail("integer too large");
                return result | ((uint)b << 28);
            }
            result |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    public int ReadS32()
    {
        int result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) Fail("integer representation too long");
                // The unused high bits must be a sign extension of bit 3 of this last byte.
                var sign = b & 0x08;
                var high = b & 0x70;
                if ((sign == 0 && high != 0) || (sign != 0 && high != 0x70)) Fail("integer too large");
                return result | (b << 28);
            }
            result |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if (shift < 25 && (b & 0x40) != 0) result |= -1 << (shift + 7);
                return result;
            }
        }
    }

    /// <summary>A signed 33-bit integer, used by block types (type indices are non-negative s33 values).</summary>
    public long ReadS33()
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) Fail("integer representation too long");
                var sign = b & 0x10;
                var high = b & 0x60;
                if ((sign == 0 && high != 0) || (sign != 0 && high != 0x60)) Fail("integer too large");
                result |= (long)(b & 0x1F) << 28;
                if (sign != 0) result |= -1L << 33;
                return result;
            }
            result |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if ((b & 0x40) != 0) result |= -1L << (shift + 7);
                return result;
            }
        }
    }

    public long ReadS64()
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 63)
            {
                if ((b & 0x80) != 0) Fail("integer representation too long");
                // Only bit 0 carries data; the rest must sign-extend it.
                if (b != 0 && b != 0x7F) Fail("integer too large");
                return result | ((long)b << 63);
            }
            result |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if (shift < 57 && (b & 0x40) != 0) result |= -1L << (shift + 7);
                return result;
            }
        }
    }

    public ulong ReadU64()
    {
        ulong result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 63)
            {
                if ((b & 0x80) != 0) Fail("integer representation too long");
                if ((b & 0x7E) != 0) Fail("integer too large");
                return result | ((ulong)b << 63);
            }
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    public uint ReadF32Bits() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    public ulong ReadF64Bits() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public string ReadName()
    {
        var length = ReadU32();
        if (length > Remaining) Fail(EndMessage);
        var bytes = ReadBytes((int)length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            Fail("malformed UTF-8 encoding");
            return null;
        }
    }

    /// <summary>A vector length, bounded by the bytes left (each element takes at least one byte).</summary>
    public int ReadCount()
    {
        var n = ReadU32();
        if (n > (uint)Remaining) Fail(EndMessage);
        return (int)n;
    }
}
