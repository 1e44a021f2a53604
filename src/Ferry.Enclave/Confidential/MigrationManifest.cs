namespace Ferry.Enclave.Confidential;

/// <summary>
/// The sender's account of its data streams, sealed as a <see cref="SealedRecordKind.Manifest"/> record on the
/// control stream once every data stream is finished. Sequence numbers and end records protect each stream on its
/// own; the manifest closes the remaining gap — a whole stream that never arrived (or one that should not exist),
/// which no per-stream check can see. The receiver checks it with <see cref="Verify"/> before it reports ready.
/// </summary>
public sealed class MigrationManifest
{
    private static ReadOnlySpan<byte> Magic => "FMAN"u8;
    private const ushort Version = 1;
    private const int MaxStreams = 1 << 16;

    public MigrationManifest(IEnumerable<StreamSummary> streams)
    {
        var list = streams.OrderBy(s => s.StreamId).ToList();
        for (var i = 1; i < list.Count; i++)
        {
            if (list[i].StreamId == list[i - 1].StreamId) throw new ArgumentException($"stream {list[i].StreamId} appears twice in the manifest");
        }
        Streams = list;
    }

    /// <summary>Every data stream, by id.</summary>
    public IReadOnlyList<StreamSummary> Streams { get; }

    /// <summary>The manifest of finished sealers; refuses one that is not finished (its count could still change).</summary>
    public static MigrationManifest FromSealers(IEnumerable<RecordSealer> sealers) => new(sealers.Select(s =>
        s.IsFinished ? s.Summary : throw new InvalidOperationException($"stream {s.StreamId} is not finished; finish every data stream before building the manifest")));

    public byte[] Encode()
    {
        var w = new WireWriter(8 + Streams.Count * 20);
        w.Bytes(Magic);
        w.U16(Version);
        w.U32((uint)Streams.Count);
        foreach (var s in Streams)
        {
            w.U32(s.StreamId);
            w.U64(s.Records);
            w.U64(s.PayloadBytes);
        }
        return w.ToArray();
    }

    /// <summary>Parses a manifest (the payload of an authenticated manifest record); throws <see cref="SealedDataException"/> if malformed.</summary>
    public static MigrationManifest Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var r = new WireReader(bytes);
            if (!r.Bytes(4, "magic").SequenceEqual(Magic)) throw new WireFormatException("not a manifest (bad magic)");
            var version = r.U16("version");
            if (version != Version) throw new WireFormatException($"manifest version {version}; this runtime reads {Version}");
            var count = r.U32("stream count");
            if (count > MaxStreams) throw new WireFormatException($"{count} streams, more than {MaxStreams}");
            var list = new List<StreamSummary>((int)count);
            for (var i = 0; i < count; i++) list.Add(new StreamSummary(r.U32("stream id"), r.U64("records"), r.U64("bytes")));
            r.End("manifest");
            return new MigrationManifest(list);
        }
        catch (Exception e) when (e is WireFormatException or ArgumentException)
        {
            throw new SealedDataException(SealedDataFailure.Malformed, e.Message);
        }
    }

    /// <summary>
    /// Checks that the receiver's data-stream openers account for exactly the streams and records the sender sealed:
    /// every listed stream present and complete with the same totals, no opener that accepted records of an unlisted
    /// stream. Throws <see cref="SealedDataException"/> (missing, truncated) otherwise.
    /// </summary>
    public void Verify(IEnumerable<RecordOpener> dataStreams)
    {
        var openers = new Dictionary<uint, RecordOpener>();
        foreach (var o in dataStreams) openers[o.StreamId] = o;
        foreach (var s in Streams)
        {
            if (!openers.TryGetValue(s.StreamId, out var o) || (o.Summary.Records == 0 && !o.IsComplete && s.Records > 0))
            {
                throw new SealedDataException(SealedDataFailure.Missing, $"stream {s.StreamId} ({s.Records} records, {s.PayloadBytes} bytes) never arrived");
            }
            if (!o.IsComplete)
            {
                throw new SealedDataException(SealedDataFailure.Truncated, $"stream {s.StreamId}: {o.Summary.Records} of {s.Records} records arrived, without the end record");
            }
            if (o.Summary != s)
            {
                throw new SealedDataException(SealedDataFailure.Missing, $"stream {s.StreamId}: the manifest lists {s.Records} records ({s.PayloadBytes} bytes), {o.Summary.Records} ({o.Summary.PayloadBytes} bytes) arrived");
            }
        }
        foreach (var o in openers.Values)
        {
            if (Streams.All(s => s.StreamId != o.StreamId) && (o.Summary.Records > 0 || o.IsComplete))
            {
                throw new SealedDataException(SealedDataFailure.Malformed, $"stream {o.StreamId} carried {o.Summary.Records} records but is not in the sender's manifest");
            }
        }
    }
}
