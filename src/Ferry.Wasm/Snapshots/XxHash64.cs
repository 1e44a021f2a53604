using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Snapshots;

/// <summary>
/// Streaming XXH64 (Yann Collet's public algorithm, implemented here from its specification): a fast
/// non-cryptographic checksum used to detect corrupted or truncated snapshots. Authenticity is a different
/// matter, handled by sealing (AES-GCM) for confidential workloads.
/// </summary>
public sealed class XxHash64
{
    private const ulong P1 = 0x9E3779B185EBCA87UL;
    private const ulong P2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong P3 = 0x165667B19E3779F9UL;
    private const ulong P4 = 0x85EBCA77C2B2AE63UL;
    private const ulong P5 = 0x27D4EB2F165667C5UL;

    private readonly ulong seed;
    private ulong v1, v2, v3, v4;
    private ulong total;
    private readonly byte[] buffer = new byte[32];
    private int buffered;

    public XxHash64(ulong seed = 0)
    {
        this.seed = seed;
        v1 = seed + P1 + P2;
        v2 = seed + P2;
        v3 = seed;
        v4 = seed - P1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Round(ulong acc, ulong input) => BitOperations.RotateLeft(acc + input * P2, 31) * P1;

    private static ulong Merge(ulong acc, ulong value) => (acc ^ Round(0, value)) * P1 + P4;

    public void Append(ReadOnlySpan<byte> data)
    {
        total += (ulong)data.Length;
        if (buffered > 0)
        {
            var take = Math.Min(32 - buffered, data.Length);
            data[..take].CopyTo(buffer.AsSpan(buffered));
            buffered += take;
            data = data[take..];
            if (buffered < 32) return;
            Stripe(buffer);
            buffered = 0;
        }
        var a = v1;
        var b = v2;
        var c = v3;
        var d = v4;
        while (data.Length >= 32)
        {
            a = Round(a, BinaryPrimitives.ReadUInt64LittleEndian(data));
            b = Round(b, BinaryPrimitives.ReadUInt64LittleEndian(data[8..]));
            c = Round(c, BinaryPrimitives.ReadUInt64LittleEndian(data[16..]));
            d = Round(d, BinaryPrimitives.ReadUInt64LittleEndian(data[24..]));
            data = data[32..];
        }
        v1 = a;
        v2 = b;
        v3 = c;
        v4 = d;
        data.CopyTo(buffer);
        buffered = data.Length;
    }

    private void Stripe(ReadOnlySpan<byte> s)
    {
        v1 = Round(v1, BinaryPrimitives.ReadUInt64LittleEndian(s));
        v2 = Round(v2, BinaryPrimitives.ReadUInt64LittleEndian(s[8..]));
        v3 = Round(v3, BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));
        v4 = Round(v4, BinaryPrimitives.ReadUInt64LittleEndian(s[24..]));
    }

    public ulong Digest()
    {
        ulong h;
        if (total >= 32)
        {
            h = BitOperations.RotateLeft(v1, 1) + BitOperations.RotateLeft(v2, 7) + BitOperations.RotateLeft(v3, 12) + BitOperations.RotateLeft(v4, 18);
            h = Merge(h, v1);
            h = Merge(h, v2);
            h = Merge(h, v3);
            h = Merge(h, v4);
        }
        else
        {
            h = seed + P5;
        }
        h += total;
        ReadOnlySpan<byte> rest = buffer.AsSpan(0, buffered);
        while (rest.Length >= 8)
        {
            h ^= Round(0, BinaryPrimitives.ReadUInt64LittleEndian(rest));
            h = BitOperations.RotateLeft(h, 27) * P1 + P4;
            rest = rest[8..];
        }
        if (rest.Length >= 4)
        {
            h ^= BinaryPrimitives.ReadUInt32LittleEndian(rest) * P1;
            h = BitOperations.RotateLeft(h, 23) * P2 + P3;
            rest = rest[4..];
        }
        foreach (var b in rest)
        {
            h ^= b * P5;
            h = BitOperations.RotateLeft(h, 11) * P1;
        }
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        h ^= h >> 32;
        return h;
    }

    public static ulong Hash(ReadOnlySpan<byte> data)
    {
        var x = new XxHash64();
        x.Append(data);
        return x.Digest();
    }
}
