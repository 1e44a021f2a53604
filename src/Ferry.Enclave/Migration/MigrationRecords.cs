using System.Buffers.Binary;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Plaintext layouts of the records that carry a guest between enclaves (before protection). Little-endian,
/// host-independent, shared with the snapshot format's state encoding.
/// </summary>
public static class MigrationRecords
{
    public const int PageSize = SnapshotFormat.PageSize;

    /// <summary>Batch header: round, page count, zero-page count, source memory size.</summary>
    public const int BatchHeaderBytes = 4 + 4 + 4 + 8;

    public static int BatchPlaintextBytes(int pages, int zeroPages) => BatchHeaderBytes + (pages + zeroPages) * 8 + pages * PageSize;

    /// <summary>The final execution state (frames and everything else but memory contents).</summary>
    public sealed class StateRecord
    {
        public required long FrozenAtUnixNanos { get; init; }
        public required int FinalRound { get; init; }
        /// <summary>Batches sent on each stream before this record (the destination must have them all).</summary>
        public required long[] BatchesPerStream { get; init; }
        public required byte[] ModuleSha256 { get; init; }
        public required WasmValue[] Globals { get; init; }
        public required StateCodec.TableImage[] Tables { get; init; }
        public required bool[] DroppedData { get; init; }
        public required bool[] DroppedElements { get; init; }
        public required FrameRecord[] Frames { get; init; }
        public required ulong MemoryBytes { get; init; }
        /// <summary>Post-copy: one bit per 4 KiB page still to come from the source; null when memory is complete.</summary>
        public byte[]? PendingPages { get; init; }
        public required byte[] Environment { get; init; }
        /// <summary>Migration epoch of the workload (anti-rollback for confidential workloads; 0 otherwise).</summary>
        public required ulong Epoch { get; init; }
        /// <summary>Confidential workloads: the encoded <c>WorkloadIdentity</c> (measurement ‖ instance id) the epoch belongs to; empty otherwise.</summary>
        public byte[] Identity { get; init; } = [];
    }

    public static byte[] EncodeState(StateRecord s, Instance instance)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms))
        {
            w.Write(s.FrozenAtUnixNanos);
            w.Write(s.FinalRound);
            w.Write(s.BatchesPerStream.Length);
            foreach (var c in s.BatchesPerStream) w.Write(c);
            w.Write(s.ModuleSha256);
            StateCodec.WriteGlobals(w, instance);
            StateCodec.WriteTables(w, instance);
            StateCodec.WriteSegments(w, instance);
            StateCodec.WriteFrames(w, s.Frames, instance);
            w.Write(s.MemoryBytes);
            w.Write(s.PendingPages is null ? 0 : s.PendingPages.Length);
            if (s.PendingPages is not null) w.Write(s.PendingPages);
            w.Write(s.Environment.Length);
            w.Write(s.Environment);
            w.Write(s.Epoch);
            w.Write(s.Identity.Length);
            w.Write(s.Identity);
        }
        return ms.ToArray();
    }

    public static StateRecord DecodeState(ReadOnlySpan<byte> data)
    {
        var r = new StateCodec.Reader(data, "state record");
        var frozenAt = r.I64();
        var round = r.I32();
        var streams = r.Count(8);
        var counts = new long[streams];
        for (var i = 0; i < streams; i++) counts[i] = r.I64();
        var sha = r.Bytes(32).ToArray();
        var globals = StateCodec.ReadGlobals(ref r);
        var tables = StateCodec.ReadTables(ref r);
        var (droppedData, droppedElems) = StateCodec.ReadSegments(ref r);
        var frames = StateCodec.ReadFrames(ref r);
        var memoryBytes = r.U64();
        var pendingLength = r.Count(1);
        var pending = pendingLength > 0 ? r.Bytes(pendingLength).ToArray() : null;
        var envLength = r.Count(1);
        var env = r.Bytes(envLength).ToArray();
        var epoch = r.U64();
        var identityLength = r.Count(1);
        var identity = identityLength > 0 ? r.Bytes(identityLength).ToArray() : [];
        r.ExpectEnd();
        return new StateRecord
        {
            FrozenAtUnixNanos = frozenAt,
            FinalRound = round,
            BatchesPerStream = counts,
            ModuleSha256 = sha,
            Globals = globals,
            Tables = tables,
            DroppedData = droppedData,
            DroppedElements = droppedElems,
            Frames = frames,
            MemoryBytes = memoryBytes,
            PendingPages = pending,
            Environment = env,
            Epoch = epoch,
            Identity = identity,
        };
    }

    /// <summary>A decoded page batch; page data is referenced, not copied.</summary>
    public readonly ref struct Batch
    {
        private readonly ReadOnlySpan<byte> body;

        public Batch(ReadOnlySpan<byte> plaintext)
        {
            if (plaintext.Length < BatchHeaderBytes) throw new MigrationIntegrityException("page batch too short");
            Round = BinaryPrimitives.ReadInt32LittleEndian(plaintext);
            Count = BinaryPrimitives.ReadInt32LittleEndian(plaintext[4..]);
            ZeroCount = BinaryPrimitives.ReadInt32LittleEndian(plaintext[8..]);
            MemoryBytes = BinaryPrimitives.ReadUInt64LittleEndian(plaintext[12..]);
            if (Count < 0 || ZeroCount < 0 || (long)BatchPlaintextBytes(Count, ZeroCount) != plaintext.Length)
            {
                throw new MigrationIntegrityException("page batch length does not match its header");
            }
            body = plaintext[BatchHeaderBytes..];
        }

        public int Round { get; }
        public int Count { get; }
        public int ZeroCount { get; }
        public ulong MemoryBytes { get; }

        public long Page(int i) => BinaryPrimitives.ReadInt64LittleEndian(body[(i * 8)..]);
        public long ZeroPage(int i) => BinaryPrimitives.ReadInt64LittleEndian(body[((Count + i) * 8)..]);
        public ReadOnlySpan<byte> Data(int i) => body.Slice((Count + ZeroCount) * 8 + i * PageSize, PageSize);
    }
}
