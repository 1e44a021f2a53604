using System.Buffers.Binary;
using Ferry.Wasm.Snapshots;

namespace Ferry.Enclave.Migration;

/// <summary>What a protected migration record carries; part of its authenticated context. Append only.</summary>
public enum MigrationRecordKind : byte
{
    PageBatch = 1,
    State = 2,
    /// <summary>The source's commit decision (authenticated: only the source's enclave can make the destination start).</summary>
    Commit = 3,
    /// <summary>Destination → source: I hold the complete, verified state of this epoch (the source may commit).</summary>
    Ready = 4,
    /// <summary>Destination → source: the guest runs here since this instant (the source may retire).</summary>
    Resumed = 5,
    /// <summary>
    /// Destination → source: this destination threw the state away before accepting a commit and will never run it.
    /// The source's proof that resuming after a commit that went missing cannot make a second copy.
    /// </summary>
    Discarded = 6,
    /// <summary>
    /// Source → destination (confidential): the identity and epoch the state will carry, sent before the freeze so the
    /// destination can prepare its epoch record meanwhile. A hint: the state decides (see EnclaveDestination.OpenEpochIntent).
    /// </summary>
    EpochIntent = 7,
    /// <summary>
    /// Source → destination, right after the freeze: which function and safe point each frozen frame is at (no values),
    /// so the destination compiles the code that resumes them while the last pages and the state travel. A hint: the
    /// state's frames decide. Protected like the rest, so a confidential guest's call-stack shape stays hidden.
    /// </summary>
    FrameHint = 8,
}

/// <summary>The context a record is bound to: replaying it in another place is detected.</summary>
public readonly record struct RecordContext(MigrationRecordKind Kind, int Stream, long Sequence);

/// <summary>
/// Protects records as they leave the enclave and checks them as they enter the other one. The plain
/// implementation only detects corruption; the confidential one (AES-256-GCM under the migration session key)
/// also hides contents and detects tampering, replay, reordering and truncation.
/// </summary>
public interface IRecordProtector
{
    /// <summary>Bytes added to a record by <see cref="Protect"/>.</summary>
    int Overhead { get; }

    /// <summary>Writes the protected form of <paramref name="plaintext"/> to <paramref name="output"/>; returns its length.</summary>
    int Protect(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output);

    /// <summary>Checks a protected record against its expected context; writes the plaintext; returns its length.</summary>
    int Open(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext);

    /// <summary>
    /// Where a protected record's plaintext lies: <see cref="ProtectInPlace"/> and <see cref="OpenInPlace"/> work on
    /// records of <see cref="HeaderSize"/> bytes, the plaintext, and <see cref="Overhead"/> − HeaderSize bytes.
    /// </summary>
    int HeaderSize { get; }

    /// <summary>
    /// Like <see cref="Protect"/> without a copy: the plaintext already lies at <see cref="HeaderSize"/> in
    /// <paramref name="record"/>, which is exactly the protected length (plaintext + <see cref="Overhead"/>). Page
    /// batches are read from memory straight into the record this way.
    /// </summary>
    void ProtectInPlace(in RecordContext context, Span<byte> record);

    /// <summary>Like <see cref="Open"/> without a copy: on return the plaintext lies at <see cref="HeaderSize"/>; returns its length.</summary>
    int OpenInPlace(in RecordContext context, Span<byte> record);

    /// <summary>Destination side: protects a reply to the source (Ready, Resumed) on the control stream's reverse direction.</summary>
    int ProtectReply(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output);

    /// <summary>Source side: checks a reply from the destination (Ready, Resumed).</summary>
    int OpenReply(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext);
}

/// <summary>A migration record failed its check (corrupted, or for sealed records: tampered, replayed, reordered).</summary>
public sealed class MigrationIntegrityException(string message) : Exception(message);

/// <summary>
/// Non-confidential protection: the record travels in the clear with a context header and an XXH64 checksum,
/// so corruption and misdelivery (wrong stream, sequence or round) are caught.
/// </summary>
public sealed class PlainRecordProtector : IRecordProtector
{
    private const int HeaderBytes = 1 + 4 + 8;

    public int Overhead => HeaderBytes + 8;

    public int HeaderSize => HeaderBytes;

    public int Protect(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        plaintext.CopyTo(output[HeaderBytes..]);
        var length = plaintext.Length + Overhead;
        ProtectInPlace(context, output[..length]);
        return length;
    }

    public void ProtectInPlace(in RecordContext context, Span<byte> record)
    {
        if (record.Length < Overhead) throw new ArgumentException("record is shorter than a header and a checksum", nameof(record));
        record[0] = (byte)context.Kind;
        BinaryPrimitives.WriteInt32LittleEndian(record[1..], context.Stream);
        BinaryPrimitives.WriteInt64LittleEndian(record[5..], context.Sequence);
        var length = record.Length - 8;
        BinaryPrimitives.WriteUInt64LittleEndian(record[length..], XxHash64.Hash(record[..length]));
    }

    public int Open(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext)
    {
        var body = Check(context, record);
        body.CopyTo(plaintext);
        return body.Length;
    }

    public int OpenInPlace(in RecordContext context, Span<byte> record) => Check(context, record).Length;

    /// <summary>Checks a record's checksum and context; returns its body (in place).</summary>
    private ReadOnlySpan<byte> Check(in RecordContext context, ReadOnlySpan<byte> record)
    {
        if (record.Length < Overhead) throw new MigrationIntegrityException("record too short");
        var length = record.Length - 8;
        if (XxHash64.Hash(record[..length]) != BinaryPrimitives.ReadUInt64LittleEndian(record[length..]))
        {
            throw new MigrationIntegrityException($"record {context.Kind} #{context.Sequence} on stream {context.Stream} is corrupt (checksum mismatch)");
        }
        var kind = (MigrationRecordKind)record[0];
        var stream = BinaryPrimitives.ReadInt32LittleEndian(record[1..]);
        var seq = BinaryPrimitives.ReadInt64LittleEndian(record[5..]);
        if (kind != context.Kind || stream != context.Stream || seq != context.Sequence)
        {
            throw new MigrationIntegrityException($"expected {context.Kind} #{context.Sequence} on stream {context.Stream}, got {kind} #{seq} on stream {stream}");
        }
        return record[HeaderBytes..length];
    }

    // Plain records look the same in both directions; the kinds tell replies apart.
    public int ProtectReply(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output) => Protect(context, plaintext, output);

    public int OpenReply(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext) => Open(context, record, plaintext);
}
