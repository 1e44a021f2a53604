using System.Buffers;
using System.Buffers.Binary;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Snapshots;

/// <summary>The memory record's header: the memory's shape and how many pages the file stores.</summary>
public sealed record MemoryImage(bool Is64, ulong WasmPages, ulong? MaxPages);

/// <summary>Everything in a snapshot except the memory contents (which are streamed, see <see cref="SnapshotReader"/>).</summary>
public sealed class SnapshotHeader
{
    public required byte[] ModuleSha256 { get; init; }
    public required long ModuleSize { get; init; }
    public required string ModuleName { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    public required WasmValue[] Globals { get; init; }
    public required StateCodec.TableImage[] Tables { get; init; }
    public required bool[] DroppedData { get; init; }
    public required bool[] DroppedElements { get; init; }
    /// <summary>Frames with function references still as indices; see <see cref="StateCodec.ResolveFrames"/>.</summary>
    public required FrameRecord[] Frames { get; init; }
    public required byte[] Wasi { get; init; }
    public MemoryImage? Memory { get; init; }
    /// <summary>The module's bytes, when the snapshot carries them (checked against <see cref="ModuleSha256"/>).</summary>
    public byte[]? ModuleCode { get; init; }
}

/// <summary>
/// Reads a snapshot: <see cref="Header"/> on construction, then the memory pages (into an instance, or just
/// counted), then <see cref="Finish"/> verifies the closing checksum. Every length is checked against what a
/// valid file can hold; a truncated or corrupt snapshot is refused with <see cref="SnapshotFormatException"/>.
/// </summary>
public sealed class SnapshotReader
{
    private readonly Stream input;
    private readonly XxHash64 hash = new();
    private readonly byte[] small = new byte[32];
    private ulong memoryPayload;
    private bool memoryRead;

    public SnapshotReader(Stream input)
    {
        this.input = input;
        Header = ReadHeader();
    }

    public SnapshotHeader Header { get; }

    private void ReadExactly(Span<byte> buffer)
    {
        var n = input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (n < buffer.Length) throw new SnapshotFormatException("snapshot is truncated");
        hash.Append(buffer);
    }

    private (RecordKind Kind, ulong Length) RecordHeader()
    {
        Span<byte> h = small.AsSpan(0, 10);
        ReadExactly(h);
        return ((RecordKind)BinaryPrimitives.ReadUInt16LittleEndian(h), BinaryPrimitives.ReadUInt64LittleEndian(h[2..]));
    }

    private (RecordKind Kind, ulong Length)? peeked;

    private byte[] SmallRecord(RecordKind expected)
    {
        var (kind, length) = peeked ?? RecordHeader();
        peeked = null;
        if (kind != expected) throw new SnapshotFormatException($"expected a {expected} record, found record kind {(ushort)kind}");
        if (length > SnapshotFormat.MaxSmallRecord) throw new SnapshotFormatException($"{expected} record of {length} bytes is implausibly large");
        var bytes = new byte[length];
        ReadExactly(bytes);
        return bytes;
    }

    private SnapshotHeader ReadHeader()
    {
        Span<byte> h = stackalloc byte[12];
        var n = input.ReadAtLeast(h, 12, throwOnEndOfStream: false);
        if (n < 12 || !h[..8].SequenceEqual(SnapshotFormat.Magic)) throw new SnapshotFormatException("not a Ferry snapshot (bad magic)");
        hash.Append(h);
        var version = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
        if (version != SnapshotFormat.Version) throw new SnapshotFormatException($"snapshot format version {version} is not supported (this Ferry reads version {SnapshotFormat.Version})");

        var module = SmallRecord(RecordKind.Module);
        var mr = new StateCodec.Reader(module, "module record");
        var sha = mr.Bytes(32).ToArray();
        var size = mr.I64();
        var name = mr.String();
        mr.ExpectEnd();

        byte[]? code = null;
        peeked = RecordHeader();
        if (peeked.Value.Kind == RecordKind.ModuleCode)
        {
            code = SmallRecord(RecordKind.ModuleCode);
            if (!System.Security.Cryptography.SHA256.HashData(code).AsSpan().SequenceEqual(sha))
            {
                throw new SnapshotFormatException("the module code in the snapshot does not match its SHA-256");
            }
        }
        var metaBytes = SmallRecord(RecordKind.Metadata);
        var meta = new StateCodec.Reader(metaBytes, "metadata record");
        var metadata = StateCodec.ReadMetadata(ref meta);
        meta.ExpectEnd();

        var globalsBytes = SmallRecord(RecordKind.Globals);
        var gr = new StateCodec.Reader(globalsBytes, "globals record");
        var globals = StateCodec.ReadGlobals(ref gr);
        gr.ExpectEnd();

        var tablesBytes = SmallRecord(RecordKind.Tables);
        var tr = new StateCodec.Reader(tablesBytes, "tables record");
        var tables = StateCodec.ReadTables(ref tr);
        tr.ExpectEnd();

        var segBytes = SmallRecord(RecordKind.Segments);
        var sr = new StateCodec.Reader(segBytes, "segments record");
        var (droppedData, droppedElems) = StateCodec.ReadSegments(ref sr);
        sr.ExpectEnd();

        var frameBytes = SmallRecord(RecordKind.Frames);
        var fr = new StateCodec.Reader(frameBytes, "frames record");
        var frames = StateCodec.ReadFrames(ref fr);
        fr.ExpectEnd();

        var wasi = SmallRecord(RecordKind.Wasi);

        var (kind, length) = RecordHeader();
        MemoryImage? memory = null;
        if (kind == RecordKind.Memory)
        {
            if (length < 1 + 8 + 8 + 8) throw new SnapshotFormatException("memory record too short");
            Span<byte> mh = small.AsSpan(0, 17);
            ReadExactly(mh);
            var pages = BinaryPrimitives.ReadUInt64LittleEndian(mh[1..]);
            var max = BinaryPrimitives.ReadUInt64LittleEndian(mh[9..]);
            memory = new MemoryImage(mh[0] != 0, pages, max == ulong.MaxValue ? null : max);
            memoryPayload = length - 17;
        }
        else if (kind == RecordKind.End)
        {
            memoryRead = true;
            FinishAfterEndHeader(length);
        }
        else
        {
            throw new SnapshotFormatException($"expected a Memory record, found record kind {(ushort)kind}");
        }

        return new SnapshotHeader
        {
            ModuleSha256 = sha,
            ModuleSize = size,
            ModuleName = name,
            Metadata = metadata,
            Globals = globals,
            Tables = tables,
            DroppedData = droppedData,
            DroppedElements = droppedElems,
            Frames = frames,
            Wasi = wasi,
            Memory = memory,
            ModuleCode = code,
        };
    }

    /// <summary>
    /// Streams the stored pages: calls <paramref name="onPages"/> with each run's first 4 KiB page index and bytes
    /// (in chunks). Checks every run lies inside the memory's recorded size.
    /// </summary>
    public long ReadMemory(Action<ulong, ReadOnlySpan<byte>>? onPages)
    {
        if (memoryRead) return 0;
        memoryRead = true;
        var memory = Header.Memory!;
        var limitPages = memory.WasmPages * (MemoryType.PageSize / SnapshotFormat.PageSize);
        ulong consumed = 0;
        long stored = 0;
        ulong nextFree = 0;
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            Span<byte> rh = stackalloc byte[12];
            while (true)
            {
                if (consumed + 8 > memoryPayload) throw new SnapshotFormatException("memory record overruns its length");
                ReadExactly(rh[..8]);
                consumed += 8;
                var first = BinaryPrimitives.ReadUInt64LittleEndian(rh);
                if (first == ulong.MaxValue) break;
                ReadExactly(rh.Slice(8, 4));
                consumed += 4;
                var count = BinaryPrimitives.ReadUInt32LittleEndian(rh[8..]);
                if (count == 0 || first >= limitPages || count > limitPages - first)
                {
                    throw new SnapshotFormatException($"memory run at page {first} (+{count}) lies outside the memory's {limitPages} pages");
                }
                if (first < nextFree) throw new SnapshotFormatException($"memory run at page {first} overlaps or precedes the previous run (which ended at page {nextFree})");
                nextFree = first + count;
                var bytes = (ulong)count * SnapshotFormat.PageSize;
                if (consumed + bytes > memoryPayload) throw new SnapshotFormatException("memory record overruns its length");
                var at = first * SnapshotFormat.PageSize;
                for (ulong off = 0; off < bytes;)
                {
                    var chunk = (int)Math.Min((ulong)buffer.Length, bytes - off);
                    var span = buffer.AsSpan(0, chunk);
                    ReadExactly(span);
                    onPages?.Invoke((at + off) / SnapshotFormat.PageSize, span);
                    off += (ulong)chunk;
                }
                consumed += bytes;
                stored += count;
            }
            if (consumed != memoryPayload) throw new SnapshotFormatException("memory record length does not match its contents");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return stored;
    }

    /// <summary>Reads and verifies the closing checksum (reading, and discarding, memory first if needed).</summary>
    public void Finish()
    {
        if (!memoryRead) ReadMemory(null);
        if (Header.Memory is null) return; // the End record was already checked while reading the header
        var (kind, length) = RecordHeader();
        if (kind != RecordKind.End) throw new SnapshotFormatException($"expected the End record, found record kind {(ushort)kind}");
        FinishAfterEndHeader(length);
    }

    private void FinishAfterEndHeader(ulong length)
    {
        if (length != 8) throw new SnapshotFormatException("bad End record");
        var expected = hash.Digest();
        Span<byte> d = stackalloc byte[8];
        if (input.ReadAtLeast(d, 8, throwOnEndOfStream: false) < 8) throw new SnapshotFormatException("snapshot is truncated");
        if (BinaryPrimitives.ReadUInt64LittleEndian(d) != expected) throw new SnapshotFormatException("snapshot checksum mismatch: the file is corrupt");
        if (input.ReadByte() != -1) throw new SnapshotFormatException("unexpected bytes after the End record");
    }
}
