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

    public int Protect(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        output[0] = (byte)context.Kind;
        BinaryPrimitives.WriteInt32LittleEndian(output[1..], context.Stream);
        BinaryPrimitives.WriteInt64LittleEndian(output[5..], context.Sequence);
        plaintext.CopyTo(output[HeaderBytes..]);
        var length = HeaderBytes + plaintext.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(output[length..], XxHash64.Hash(output[..length]));
        return length + 8;
    }

    public int Open(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext)
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
        var body = record[HeaderBytes..length];
        body.CopyTo(plaintext);
        return body.Length;
    }

    // Plain records look the same in both directions; the kinds tell replies apart.
    public int ProtectReply(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output) => Protect(context, plaintext, output);

    public int OpenReply(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext) => Open(context, record, plaintext);
}
