using Ferry.Enclave.Confidential;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Confidential record protection: every record is an AES-256-GCM <see cref="SealedRecord"/> under the
/// source-to-destination key of an established, mutually attested <see cref="MigrationSession"/>. One
/// <see cref="RecordSealer"/> (source) or <see cref="RecordOpener"/> (destination) per stream id, each with its own
/// reused <c>AesGcm</c> instance: sealing and opening allocate nothing per record. The AAD binds the migration id,
/// the direction, the record kind, the stream and the sequence number (docs/confidential.md, "Record sealing"), so
/// a modified, replayed, reordered or misdirected record is refused with a <see cref="MigrationIntegrityException"/>;
/// a record dropped in the middle of a stream shows as a sequence gap, and one dropped at the end as a mismatch with
/// the per-stream batch counts in the (sealed) state record.
/// <para>
/// The protector is created before the migration's streams exist and keyed by <see cref="Attach"/> once the
/// handshake has established the session; until then it refuses to protect or open anything. A stream's records
/// must be protected (and opened) by one thread at a time, in sequence order, as <see cref="EnclaveSource"/> and
/// <see cref="EnclaveDestination"/> do.
/// </para>
/// </summary>
public sealed class SessionRecordProtector : IRecordProtector, IDisposable
{
    private readonly int streams;
    private RecordSealer[]? sealers;
    private RecordOpener[]? openers;
    // The reverse direction of the control stream: the destination's Ready and Resumed replies, sealed under the
    // destination-to-source key, so that no one on the path can make the source commit or retire.
    private RecordSealer? replySealer;
    private RecordOpener? replyOpener;
    private Guid migrationId;

    /// <param name="streams">Stream ids 0..streams-1 (control stream and page streams).</param>
    public SessionRecordProtector(int streams)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        this.streams = streams;
    }

    public int Overhead => SealedRecord.HeaderSize + SealedRecord.TagSize;

    public int HeaderSize => SealedRecord.HeaderSize;

    /// <summary>True once keyed from an established session.</summary>
    public bool IsKeyed => sealers is not null || openers is not null;

    /// <summary>The migration the keys belong to (after <see cref="Attach"/>).</summary>
    public Guid MigrationId => migrationId;

    /// <summary>Keys the protector from an established session: sealers on the source, openers on the destination.</summary>
    public void Attach(MigrationSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (session.State != SessionState.Established) throw new InvalidOperationException($"the migration session is {session.State}, not established");
        if (IsKeyed) throw new InvalidOperationException("the protector is already keyed");
        migrationId = session.MigrationId;
        if (session.Role == SessionRole.Source)
        {
            var s = new RecordSealer[streams];
            for (var i = 0; i < streams; i++) s[i] = session.CreateSealer((uint)i);
            replyOpener = session.CreateOpener(0);
            sealers = s;
        }
        else
        {
            var o = new RecordOpener[streams];
            for (var i = 0; i < streams; i++) o[i] = session.CreateOpener((uint)i);
            replySealer = session.CreateSealer(0);
            openers = o;
        }
    }

    private static SealedRecordKind Map(MigrationRecordKind kind) => kind switch
    {
        MigrationRecordKind.PageBatch => SealedRecordKind.Pages,
        MigrationRecordKind.State => SealedRecordKind.State,
        MigrationRecordKind.Commit or MigrationRecordKind.Ready or MigrationRecordKind.Resumed or MigrationRecordKind.Discarded or MigrationRecordKind.EpochIntent
            or MigrationRecordKind.FrameHint => SealedRecordKind.Control,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown record kind"),
    };

    public int Protect(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output) =>
        SealerFor(context).Seal(Map(context.Kind), 0, 0, plaintext, output);

    public void ProtectInPlace(in RecordContext context, Span<byte> record) => SealerFor(context).SealInPlace(Map(context.Kind), 0, 0, record);

    private RecordSealer SealerFor(in RecordContext context)
    {
        var all = sealers ?? throw new InvalidOperationException("no established migration session: records cannot be sealed before the attestation handshake");
        if ((uint)context.Stream >= (uint)all.Length) throw new ArgumentOutOfRangeException(nameof(context), $"stream {context.Stream} outside 0..{all.Length - 1}");
        var sealer = all[context.Stream];
        if (sealer.Summary.Records != (ulong)context.Sequence)
        {
            throw new InvalidOperationException($"stream {context.Stream}: record {context.Sequence} sealed out of order (next is {sealer.Summary.Records})");
        }
        return sealer;
    }

    public int Open(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext)
    {
        var opener = OpenerFor(context);
        OpenedRecord info;
        try
        {
            info = opener.Open(record, plaintext);
        }
        catch (SealedDataException e)
        {
            throw new MigrationIntegrityException($"sealed record refused ({e.Failure}): {e.Message}");
        }
        Expect(context, info, plaintext);
        return info.PayloadLength;
    }

    public int OpenInPlace(in RecordContext context, Span<byte> record)
    {
        var opener = OpenerFor(context);
        OpenedRecord info;
        try
        {
            info = opener.OpenInPlace(record);
        }
        catch (SealedDataException e)
        {
            throw new MigrationIntegrityException($"sealed record refused ({e.Failure}): {e.Message}");
        }
        Expect(context, info, record[SealedRecord.HeaderSize..]);
        return info.PayloadLength;
    }

    private RecordOpener OpenerFor(in RecordContext context)
    {
        var all = openers ?? throw new MigrationIntegrityException("no established migration session: sealed records cannot be opened before the attestation handshake");
        if ((uint)context.Stream >= (uint)all.Length) throw new MigrationIntegrityException($"sealed record on unknown stream {context.Stream}");
        return all[context.Stream];
    }

    /// <summary>An authentic record must still be the one due here: the kind and sequence the driver expects.</summary>
    private static void Expect(in RecordContext context, OpenedRecord info, Span<byte> plaintext)
    {
        if (info.Kind != Map(context.Kind) || info.Sequence != (ulong)context.Sequence)
        {
            plaintext[..info.PayloadLength].Clear();
            throw new MigrationIntegrityException($"stream {context.Stream}: expected {context.Kind} record {context.Sequence}, got an authentic {info.Kind} record {info.Sequence}");
        }
    }

    public int ProtectReply(in RecordContext context, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var sealer = replySealer ?? throw new InvalidOperationException("no established destination session: replies cannot be sealed before the attestation handshake");
        if (context.Stream != 0) throw new ArgumentOutOfRangeException(nameof(context), "replies travel on the control stream");
        if (sealer.Summary.Records != (ulong)context.Sequence)
        {
            throw new InvalidOperationException($"reply {context.Sequence} sealed out of order (next is {sealer.Summary.Records})");
        }
        return sealer.Seal(Map(context.Kind), 0, 0, plaintext, output);
    }

    public int OpenReply(in RecordContext context, ReadOnlySpan<byte> record, Span<byte> plaintext)
    {
        var opener = replyOpener ?? throw new MigrationIntegrityException("no established source session: sealed replies cannot be opened before the attestation handshake");
        if (context.Stream != 0) throw new MigrationIntegrityException($"sealed reply on stream {context.Stream}");
        OpenedRecord info;
        try
        {
            info = opener.Open(record, plaintext);
        }
        catch (SealedDataException e)
        {
            throw new MigrationIntegrityException($"sealed reply refused ({e.Failure}): {e.Message}");
        }
        if (info.Kind != Map(context.Kind) || info.Sequence != (ulong)context.Sequence)
        {
            plaintext[..info.PayloadLength].Clear();
            throw new MigrationIntegrityException($"expected the destination's {context.Kind} reply {context.Sequence}, got an authentic {info.Kind} record {info.Sequence}");
        }
        return info.PayloadLength;
    }

    public void Dispose()
    {
        replySealer?.Dispose();
        replyOpener?.Dispose();
        foreach (var s in sealers ?? []) s.Dispose();
        foreach (var o in openers ?? []) o.Dispose();
    }
}
