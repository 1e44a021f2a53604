using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Snapshots;

/// <summary>What a written snapshot contained.</summary>
public sealed record SnapshotStats(long Bytes, ulong MemoryBytes, long StoredPages, long ZeroPages, int Frames, TimeSpan Elapsed);

/// <summary>
/// Writes an instance's complete state as a snapshot (docs/snapshot-format.md): module identity, metadata,
/// globals, tables, segment flags, frozen frames, WASI state and linear memory (all-zero 4 KiB pages omitted),
/// closed by an XXH64 checksum of everything before it.
/// </summary>
public static class SnapshotWriter
{
    public static SnapshotStats Write(Stream output, Instance instance, IReadOnlyList<FrameRecord> frames,
        ReadOnlySpan<byte> wasiState, IReadOnlyDictionary<string, string> metadata, string? moduleName = null, bool includeModule = false)
    {
        var sw = Stopwatch.StartNew();
        var w = new RecordWriter(output);
        w.WriteHeader();
        w.Record(RecordKind.Module, b => StateCodec.WriteModule(b, ModuleIdentity.Sha256(instance.Module), instance.Module.Bytes.Length, moduleName));
        if (includeModule) w.Record(RecordKind.ModuleCode, b => b.Write(instance.Module.Bytes.Span));
        w.Record(RecordKind.Metadata, b => StateCodec.WriteMetadata(b, metadata));
        w.Record(RecordKind.Globals, b => StateCodec.WriteGlobals(b, instance));
        w.Record(RecordKind.Tables, b => StateCodec.WriteTables(b, instance));
        w.Record(RecordKind.Segments, b => StateCodec.WriteSegments(b, instance));
        w.Record(RecordKind.Frames, b => StateCodec.WriteFrames(b, frames, instance));
        var wasi = wasiState.ToArray();
        w.Record(RecordKind.Wasi, b => b.Write(wasi));
        long stored = 0, zero = 0;
        if (instance.Memory is { } memory) (stored, zero) = w.WriteMemory(memory);
        w.WriteEnd();
        output.Flush();
        return new SnapshotStats(w.Written, instance.Memory?.Size ?? 0, stored, zero, frames.Count, sw.Elapsed);
    }

    /// <summary>Frames records into the stream and feeds every byte to the checksum.</summary>
    private sealed class RecordWriter(Stream output)
    {
        private readonly XxHash64 hash = new();
        private readonly byte[] header = new byte[10];

        public long Written { get; private set; }

        private void Put(ReadOnlySpan<byte> bytes)
        {
            output.Write(bytes);
            hash.Append(bytes);
            Written += bytes.Length;
        }

        public void WriteHeader()
        {
            Span<byte> h = stackalloc byte[12];
            SnapshotFormat.Magic.CopyTo(h);
            BinaryPrimitives.WriteUInt16LittleEndian(h[8..], SnapshotFormat.Version);
            BinaryPrimitives.WriteUInt16LittleEndian(h[10..], 0);
            Put(h);
        }

        private void RecordHeader(RecordKind kind, ulong length)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(0, 2), (ushort)kind);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(2, 8), length);
            Put(header);
        }

        public void Record(RecordKind kind, Action<BinaryWriter> body)
        {
            using var ms = new MemoryStream();
            using (var bw = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) body(bw);
            RecordHeader(kind, (ulong)ms.Length);
            Put(ms.GetBuffer().AsSpan(0, (int)ms.Length));
        }

        /// <summary>Memory record: is64, size in Wasm pages, max, then runs of non-zero 4 KiB pages, then a terminator.</summary>
        public unsafe (long Stored, long Zero) WriteMemory(LinearMemory memory)
        {
            var pageCount = (long)(memory.Size / SnapshotFormat.PageSize);
            var runs = new List<(long First, int Count)>();
            long stored = 0;
            var basePtr = memory.Base;
            for (long p = 0; p < pageCount;)
            {
                if (IsZero(basePtr, p))
                {
                    p++;
                    continue;
                }
                var first = p;
                while (p < pageCount && !IsZero(basePtr, p) && p - first < int.MaxValue / SnapshotFormat.PageSize) p++;
                runs.Add((first, (int)(p - first)));
                stored += p - first;
            }
            var length = 1UL + 8 + 8 + (ulong)runs.Count * 12 + (ulong)stored * SnapshotFormat.PageSize + 8;
            RecordHeader(RecordKind.Memory, length);
            Span<byte> small = stackalloc byte[17];
            small[0] = memory.Is64 ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt64LittleEndian(small[1..], memory.Pages);
            BinaryPrimitives.WriteUInt64LittleEndian(small[9..], memory.DeclaredMaxPages ?? ulong.MaxValue);
            Put(small);
            Span<byte> runHeader = stackalloc byte[12];
            foreach (var (first, count) in runs)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(runHeader, (ulong)first);
                BinaryPrimitives.WriteUInt32LittleEndian(runHeader[8..], (uint)count);
                Put(runHeader);
                var bytes = (long)count * SnapshotFormat.PageSize;
                var src = basePtr + first * SnapshotFormat.PageSize;
                for (long off = 0; off < bytes; off += 1 << 20)
                {
                    var chunk = (int)Math.Min(1 << 20, bytes - off);
                    Put(new ReadOnlySpan<byte>(src + off, chunk));
                }
            }
            BinaryPrimitives.WriteUInt64LittleEndian(runHeader, ulong.MaxValue);
            Put(runHeader[..8]);
            return (stored, pageCount - stored);
        }

        private static unsafe bool IsZero(byte* basePtr, long page) =>
            new ReadOnlySpan<byte>(basePtr + page * SnapshotFormat.PageSize, SnapshotFormat.PageSize).IndexOfAnyExcept((byte)0) < 0;

        /// <summary>The checksum covers every byte before it, including the End record's own header.</summary>
        public void WriteEnd()
        {
            RecordHeader(RecordKind.End, 8);
            var digest = hash.Digest();
            Span<byte> d = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(d, digest);
            output.Write(d);
            Written += 8;
        }
    }
}

/// <summary>The identity of a module: SHA-256 of its bytes.</summary>
public static class ModuleIdentity
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Module, byte[]> Cache = [];

    public static byte[] Sha256(Module module) => Cache.GetValue(module, m => SHA256.HashData(m.Bytes.Span));

    public static string Hex(Module module) => Convert.ToHexStringLower(Sha256(module));
}
