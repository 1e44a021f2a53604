using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>What a sealed migration record carries. On the wire and in the AAD: append only, never renumber.</summary>
public enum SealedRecordKind : byte
{
    /// <summary>A batch of memory pages (the payload format is the integration's; page indices belong inside it).</summary>
    Pages = 1,
    /// <summary>Execution state: globals, tables, frames, WASI state, and the (identity, epoch) the state is sealed with.</summary>
    State = 2,
    /// <summary>Commit-protocol and other control messages.</summary>
    Control = 3,
    /// <summary>The sender's <see cref="MigrationManifest"/>: every data stream and how many records it carried.</summary>
    Manifest = 4,
    /// <summary>The last record of a stream, produced by <see cref="RecordSealer.Finish()"/>: count and bytes of the records before it.</summary>
    End = 5,
}

/// <summary>A stream's totals: how many data records (not counting its end record) and payload bytes it carried.</summary>
public readonly record struct StreamSummary(uint StreamId, ulong Records, ulong PayloadBytes);

/// <summary>What <see cref="RecordOpener"/> authenticated about a record.</summary>
public readonly record struct OpenedRecord(SealedRecordKind Kind, uint StreamId, ulong Sequence, uint Round, ulong Item, int PayloadLength)
{
    public bool IsEnd => Kind == SealedRecordKind.End;
}

/// <summary>
/// Layout of a sealed record (docs/confidential.md, "Record sealing"):
/// <code>
///   0  u8  version (1)        1 u8 kind          2 u16 reserved (0)
///   4  u32 stream id          8 u64 sequence    16 u32 round
///  20  u64 item (page index / batch id)         28 u32 payload length
///  32  ciphertext (payload length bytes)        then 16-byte GCM tag
/// </code>
/// The header travels in clear (the untrusted transport frames and routes by it) and is authenticated: the GCM
/// associated data is migration id (16) ‖ sender direction (1) ‖ header (32). The nonce is stream id (u32) ‖
/// sequence (u64); the key is per direction, so a (key, nonce) pair never repeats while stream ids are unique per session.
/// </summary>
public static class SealedRecord
{
    public const byte Version = 1;
    public const int HeaderSize = 32;
    public const int TagSize = 16;
    public const int NonceSize = 12;
    public const int AadSize = 16 + 1 + HeaderSize;
    /// <summary>Largest payload of one record (bounds what a reader allocates for a length it has not yet authenticated).</summary>
    public const int MaxPayload = 64 << 20;

    /// <summary>Bytes a record with <paramref name="payloadLength"/> bytes of payload occupies on the wire.</summary>
    public static int SealedLength(int payloadLength) => HeaderSize + payloadLength + TagSize;

    /// <summary>
    /// Framing for a byte stream: false if <paramref name="buffer"/> does not yet hold a whole header ("need more
    /// bytes"); otherwise the record's total length. Throws <see cref="SealedDataException"/> for a header that can
    /// never be valid (bad version, reserved bits, oversized length) — two different outcomes, never mixed.
    /// </summary>
    public static bool TryGetLength(ReadOnlySpan<byte> buffer, out int recordLength)
    {
        recordLength = 0;
        if (buffer.Length < HeaderSize) return false;
        var payload = CheckHeader(buffer);
        recordLength = SealedLength(payload);
        return true;
    }

    internal static int CheckHeader(ReadOnlySpan<byte> header)
    {
        if (header[0] != Version) throw new SealedDataException(SealedDataFailure.Malformed, $"record version {header[0]}; this runtime reads {Version}");
        if (BinaryPrimitives.ReadUInt16LittleEndian(header[2..]) != 0) throw new SealedDataException(SealedDataFailure.Malformed, "record header has reserved bits set");
        var payload = BinaryPrimitives.ReadUInt32LittleEndian(header[28..]);
        if (payload > MaxPayload) throw new SealedDataException(SealedDataFailure.TooLarge, $"record claims a {payload}-byte payload, more than the {MaxPayload} allowed");
        return (int)payload;
    }

    internal static void WriteHeader(Span<byte> h, SealedRecordKind kind, uint stream, ulong sequence, uint round, ulong item, int payloadLength)
    {
        h[0] = Version;
        h[1] = (byte)kind;
        BinaryPrimitives.WriteUInt16LittleEndian(h[2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], stream);
        BinaryPrimitives.WriteUInt64LittleEndian(h[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], round);
        BinaryPrimitives.WriteUInt64LittleEndian(h[20..], item);
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], (uint)payloadLength);
    }

    internal static void Nonce(Span<byte> nonce, uint stream, ulong sequence)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(nonce, stream);
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], sequence);
    }

    internal static void Aad(Span<byte> aad, ReadOnlySpan<byte> migrationId, SessionRole direction, ReadOnlySpan<byte> header)
    {
        migrationId.CopyTo(aad);
        aad[16] = (byte)direction;
        header[..HeaderSize].CopyTo(aad[17..]);
    }
}

/// <summary>
/// Seals the records of one outgoing stream with AES-256-GCM: consecutive sequence numbers from 0, each record's
/// context (migration, direction, stream, sequence, round, kind, item, length) authenticated. One instance per
/// stream and per thread (not thread-safe); streams run in parallel on separate instances. Ends with
/// <see cref="Finish(Span{byte})"/>, whose end record lets the receiver detect truncation.
/// </summary>
public sealed class RecordSealer : IDisposable
{
    private readonly AesGcm gcm;
    private readonly byte[] migrationId;
    private readonly SessionRole direction;
    private ulong sequence;
    private ulong payloadBytes;

    internal RecordSealer(byte[] key, Guid migrationId, SessionRole direction, uint streamId)
    {
        gcm = new AesGcm(key, SealedRecord.TagSize);
        this.migrationId = migrationId.ToByteArray();
        this.direction = direction;
        StreamId = streamId;
    }

    public uint StreamId { get; }
    public bool IsFinished { get; private set; }
    /// <summary>Data records sealed so far (the end record excluded).</summary>
    public StreamSummary Summary => new(StreamId, sequence, payloadBytes);

    /// <summary>Seals <paramref name="payload"/> into <paramref name="destination"/> (at least <see cref="SealedRecord.SealedLength"/> bytes); returns the bytes written.</summary>
    public int Seal(SealedRecordKind kind, uint round, ulong item, ReadOnlySpan<byte> payload, Span<byte> destination)
    {
        CheckKind(kind);
        var total = SealedRecord.SealedLength(payload.Length);
        if (destination.Length < total) throw new ArgumentException($"destination holds {destination.Length} bytes, the record needs {total}", nameof(destination));
        SealCore(kind, round, item, payload, destination[..total]);
        return total;
    }

    /// <summary>Seals <paramref name="payload"/> into a new array.</summary>
    public byte[] Seal(SealedRecordKind kind, uint round, ulong item, ReadOnlySpan<byte> payload)
    {
        CheckKind(kind);
        var record = new byte[SealedRecord.SealedLength(payload.Length)];
        SealCore(kind, round, item, payload, record);
        return record;
    }

    /// <summary>
    /// Seals in place, without a copy: <paramref name="record"/> is exactly <see cref="SealedRecord.SealedLength"/>(n)
    /// bytes with the n payload bytes already at offset <see cref="SealedRecord.HeaderSize"/> (e.g. pages copied straight
    /// from linear memory); the header and tag are filled in and the payload is encrypted where it lies.
    /// </summary>
    public void SealInPlace(SealedRecordKind kind, uint round, ulong item, Span<byte> record)
    {
        CheckKind(kind);
        var n = record.Length - SealedRecord.HeaderSize - SealedRecord.TagSize;
        if (n < 0) throw new ArgumentException("record is shorter than a header and a tag", nameof(record));
        SealCore(kind, round, item, record.Slice(SealedRecord.HeaderSize, n), record);
    }

    /// <summary>The end record (count and bytes of every record before it). No record can be sealed on this stream afterwards.</summary>
    public int Finish(Span<byte> destination)
    {
        if (IsFinished) throw new InvalidOperationException($"stream {StreamId} is already finished");
        Span<byte> body = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(body, sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], payloadBytes);
        var total = SealedRecord.SealedLength(16);
        if (destination.Length < total) throw new ArgumentException($"destination holds {destination.Length} bytes, the end record needs {total}", nameof(destination));
        SealCore(SealedRecordKind.End, 0, 0, body, destination[..total]);
        IsFinished = true;
        return total;
    }

    public byte[] Finish()
    {
        var record = new byte[SealedRecord.SealedLength(16)];
        Finish(record);
        return record;
    }

    private void CheckKind(SealedRecordKind kind)
    {
        if (kind == SealedRecordKind.End) throw new ArgumentException("end records come from Finish()", nameof(kind));
        if (kind is < SealedRecordKind.Pages or > SealedRecordKind.End) throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown record kind");
    }

    private void SealCore(SealedRecordKind kind, uint round, ulong item, ReadOnlySpan<byte> payload, Span<byte> record)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (IsFinished) throw new InvalidOperationException($"stream {StreamId} is finished; no record can follow its end record");
        if (payload.Length > SealedRecord.MaxPayload) throw new ArgumentException($"payload of {payload.Length} bytes exceeds the {SealedRecord.MaxPayload}-byte record limit", nameof(payload));
        if (sequence == ulong.MaxValue) throw new InvalidOperationException("sequence space exhausted");
        SealedRecord.WriteHeader(record, kind, StreamId, sequence, round, item, payload.Length);
        Span<byte> nonce = stackalloc byte[SealedRecord.NonceSize];
        Span<byte> aad = stackalloc byte[SealedRecord.AadSize];
        SealedRecord.Nonce(nonce, StreamId, sequence);
        SealedRecord.Aad(aad, migrationId, direction, record);
        var body = record.Slice(SealedRecord.HeaderSize, payload.Length);
        gcm.Encrypt(nonce, payload, body, record.Slice(SealedRecord.HeaderSize + payload.Length, SealedRecord.TagSize), aad);
        if (kind == SealedRecordKind.End) return; // the end record does not count itself: its sequence == Summary.Records
        sequence++;
        payloadBytes += (ulong)payload.Length;
    }

    private bool disposed;

    public void Dispose()
    {
        disposed = true;
        gcm.Dispose();
    }
}

/// <summary>
/// Opens the records of one incoming stream. A record is accepted only if it authenticates under this session's key
/// for this migration, direction and stream, and carries exactly the next sequence number: an earlier one is a
/// replay, a later one means records were dropped or reordered. After the end record nothing more is accepted;
/// <see cref="Complete"/> at end of input detects truncation. The first failure poisons the opener: every later
/// call fails too, so a caller cannot continue past refused data. One instance per stream, not thread-safe.
/// </summary>
public sealed class RecordOpener : IDisposable
{
    private readonly AesGcm gcm;
    private readonly byte[] migrationId;
    private readonly SessionRole direction;
    private ulong expected;
    private ulong payloadBytes;
    private SealedDataException? failure;
    private bool disposed;

    internal RecordOpener(byte[] key, Guid migrationId, SessionRole direction, uint streamId)
    {
        gcm = new AesGcm(key, SealedRecord.TagSize);
        this.migrationId = migrationId.ToByteArray();
        this.direction = direction;
        StreamId = streamId;
    }

    public uint StreamId { get; }
    /// <summary>True once the end record was opened and matched the stream's totals.</summary>
    public bool IsComplete { get; private set; }
    public bool HasFailed => failure is not null;
    /// <summary>Data records and payload bytes accepted so far.</summary>
    public StreamSummary Summary => new(StreamId, expected, payloadBytes);

    /// <summary>Authenticates and decrypts <paramref name="record"/> into <paramref name="payload"/>; returns what the record is.</summary>
    public OpenedRecord Open(ReadOnlySpan<byte> record, Span<byte> payload) => OpenCore(record, payload);

    /// <summary>Like <see cref="Open(ReadOnlySpan{byte}, Span{byte})"/> into a new array.</summary>
    public byte[] Open(ReadOnlySpan<byte> record, out OpenedRecord info)
    {
        var n = record.Length >= SealedRecord.HeaderSize ? record.Length - SealedRecord.HeaderSize - SealedRecord.TagSize : 0;
        var payload = new byte[Math.Max(0, n)];
        info = OpenCore(record, payload);
        return info.PayloadLength == payload.Length ? payload : payload[..info.PayloadLength];
    }

    /// <summary>Decrypts where the record lies: on return the payload is at offset <see cref="SealedRecord.HeaderSize"/>.</summary>
    public OpenedRecord OpenInPlace(Span<byte> record) => OpenCore(record, record[Math.Min(record.Length, SealedRecord.HeaderSize)..]);

    /// <summary>Call at end of input: throws <see cref="SealedDataException"/> (truncated) unless the end record was received.</summary>
    public void Complete()
    {
        if (failure is not null) throw Again();
        if (!IsComplete)
        {
            throw Fail(SealedDataFailure.Truncated, $"stream {StreamId} ended after {expected} records without its end record");
        }
    }

    private OpenedRecord OpenCore(ReadOnlySpan<byte> record, Span<byte> payload)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (failure is not null) throw Again();
        if (IsComplete) throw Fail(SealedDataFailure.AfterEnd, $"stream {StreamId}: a record arrived after the end record");
        if (record.Length < SealedRecord.HeaderSize + SealedRecord.TagSize)
        {
            throw Fail(SealedDataFailure.Truncated, $"stream {StreamId}: a record of {record.Length} bytes is shorter than a header and a tag");
        }
        int length;
        try
        {
            length = SealedRecord.CheckHeader(record);
        }
        catch (SealedDataException e)
        {
            throw Fail(e.Failure, $"stream {StreamId}, record {expected}: " + e.Message);
        }
        if (record.Length != SealedRecord.SealedLength(length))
        {
            throw Fail(record.Length < SealedRecord.SealedLength(length) ? SealedDataFailure.Truncated : SealedDataFailure.Malformed,
                $"stream {StreamId}, record {expected}: header says {length} payload bytes, the record holds {record.Length - SealedRecord.HeaderSize - SealedRecord.TagSize}");
        }
        if (payload.Length < length) throw new ArgumentException($"payload buffer holds {payload.Length} bytes, the record has {length}", nameof(payload));

        var kind = (SealedRecordKind)record[1];
        var stream = BinaryPrimitives.ReadUInt32LittleEndian(record[4..]);
        var sequence = BinaryPrimitives.ReadUInt64LittleEndian(record[8..]);
        var round = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
        var item = BinaryPrimitives.ReadUInt64LittleEndian(record[20..]);

        Span<byte> nonce = stackalloc byte[SealedRecord.NonceSize];
        Span<byte> aad = stackalloc byte[SealedRecord.AadSize];
        SealedRecord.Nonce(nonce, stream, sequence);
        SealedRecord.Aad(aad, migrationId, direction, record);
        var output = payload[..length];
        try
        {
            gcm.Decrypt(nonce, record.Slice(SealedRecord.HeaderSize, length), record.Slice(SealedRecord.HeaderSize + length, SealedRecord.TagSize), output, aad);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw Fail(SealedDataFailure.Tampered,
                $"stream {StreamId}, record {expected}: authentication failed (the record or its header was modified, or it was sealed for another migration or direction)");
        }

        // Authentic from here on: the sender produced exactly this record. Now check it is the one due.
        if (stream != StreamId)
        {
            Wipe(output);
            throw Fail(SealedDataFailure.WrongStream, $"record {sequence} of stream {stream} was delivered on stream {StreamId}");
        }
        if (sequence < expected)
        {
            Wipe(output);
            throw Fail(SealedDataFailure.Replayed, $"stream {StreamId}: record {sequence} was already accepted (expected record {expected})");
        }
        if (sequence > expected)
        {
            Wipe(output);
            throw Fail(SealedDataFailure.OutOfOrder, $"stream {StreamId}: got record {sequence}, expected record {expected}: records {expected}..{sequence - 1} were dropped or reordered");
        }
        if (kind is < SealedRecordKind.Pages or > SealedRecordKind.End)
        {
            Wipe(output);
            throw Fail(SealedDataFailure.Malformed, $"stream {StreamId}, record {sequence}: unknown record kind {(byte)kind}");
        }
        if (kind == SealedRecordKind.End)
        {
            if (length != 16) throw Fail(SealedDataFailure.Malformed, $"stream {StreamId}: end record of {length} bytes");
            var count = BinaryPrimitives.ReadUInt64LittleEndian(output);
            var bytes = BinaryPrimitives.ReadUInt64LittleEndian(output[8..]);
            Wipe(output);
            if (count != expected || bytes != payloadBytes)
            {
                throw Fail(SealedDataFailure.Missing, $"stream {StreamId}: the sender sealed {count} records ({bytes} bytes), {expected} ({payloadBytes} bytes) were accepted");
            }
            IsComplete = true;
            return new OpenedRecord(kind, stream, sequence, round, item, 0);
        }
        expected++;
        payloadBytes += (ulong)length;
        return new OpenedRecord(kind, stream, sequence, round, item, length);
    }

    // Refused plaintext must not be left where the caller might use it.
    private static void Wipe(Span<byte> output) => output.Clear();

    private SealedDataException Fail(SealedDataFailure kind, string message)
    {
        failure = new SealedDataException(kind, message);
        return failure;
    }

    private SealedDataException Again() => new(failure!.Failure, $"stream {StreamId} already refused data; the migration must abort ({failure.Message})");

    public void Dispose()
    {
        disposed = true;
        gcm.Dispose();
    }
}
