using System.Buffers.Binary;

namespace Ferry.Enclave.Confidential.Tests;

public sealed class RecordSealingTests : IDisposable
{
    private readonly Fleet fleet = new("src", "dst");
    private readonly MigrationSession source;
    private readonly MigrationSession destination;

    public RecordSealingTests() => (source, destination) = fleet.Handshake("src", "dst");

    public void Dispose()
    {
        source.Dispose();
        destination.Dispose();
        fleet.Dispose();
    }

    private static byte[] Payload(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void Records_round_trip_with_their_authenticated_context()
    {
        using var sealer = source.CreateSealer(7);
        using var opener = destination.CreateOpener(7);
        var payloads = new[] { Payload(0, 1), Payload(1, 2), Payload(4096, 3), Payload(64 * 4096, 4) };
        for (var i = 0; i < payloads.Length; i++)
        {
            var record = sealer.Seal(SealedRecordKind.Pages, round: 3, item: (ulong)(100 + i), payloads[i]);
            Assert.Equal(SealedRecord.SealedLength(payloads[i].Length), record.Length);
            Assert.True(SealedRecord.TryGetLength(record, out var framed));
            Assert.Equal(record.Length, framed);
            var back = opener.Open(record, out var info);
            Assert.Equal(payloads[i], back);
            Assert.Equal(new OpenedRecord(SealedRecordKind.Pages, 7, (ulong)i, 3, (ulong)(100 + i), payloads[i].Length), info);
        }
        var end = sealer.Finish();
        Assert.True(opener.Open(end, out _).Length == 0);
        Assert.True(opener.IsComplete);
        opener.Complete();
        Assert.Equal(new StreamSummary(7, 4, (ulong)payloads.Sum(p => p.Length)), opener.Summary);
        Assert.Equal(sealer.Summary, opener.Summary);
    }

    [Fact]
    public void In_place_sealing_and_opening_need_no_copies()
    {
        using var sealer = source.CreateSealer(1);
        using var opener = destination.CreateOpener(1);
        var pages = Payload(16 * 4096, 9);
        var buffer = new byte[SealedRecord.SealedLength(pages.Length)];
        pages.CopyTo(buffer, SealedRecord.HeaderSize);
        sealer.SealInPlace(SealedRecordKind.Pages, 0, 42, buffer);
        Assert.NotEqual(pages, buffer.AsSpan(SealedRecord.HeaderSize, pages.Length).ToArray());
        var info = opener.OpenInPlace(buffer);
        Assert.Equal(42ul, info.Item);
        Assert.Equal(pages, buffer.AsSpan(SealedRecord.HeaderSize, info.PayloadLength).ToArray());

        var into = new byte[SealedRecord.SealedLength(pages.Length)];
        Assert.Equal(into.Length, sealer.Seal(SealedRecordKind.Pages, 0, 43, pages, into));
        var payload = new byte[pages.Length];
        opener.Open(into, payload);
        Assert.Equal(pages, payload);
    }

    [Fact]
    public void Sealed_records_do_not_contain_the_plaintext()
    {
        using var sealer = source.CreateSealer(0);
        var memory = Bytes.PagesWithSecret(64);
        // The check can fail: the pattern is found in the plaintext.
        Assert.NotEqual(-1, Bytes.Find(memory, Bytes.Secret));
        var wire = new MemoryStream();
        for (var p = 0; p < 64; p += 8) wire.Write(sealer.Seal(SealedRecordKind.Pages, 0, (ulong)p, memory.AsSpan(p * 4096, 8 * 4096)));
        wire.Write(sealer.Finish());
        var recorded = wire.ToArray();
        Assert.Equal(-1, Bytes.Find(recorded, Bytes.Secret));
        Assert.Equal(-1, Bytes.Find(recorded, Bytes.Secret.AsSpan(0, 8)));
    }

    [Fact]
    public void Any_modified_byte_is_refused_as_tampered_or_malformed()
    {
        using var sealer = source.CreateSealer(0);
        var record = sealer.Seal(SealedRecordKind.State, 2, 5, Payload(300, 5));
        for (var i = 0; i < record.Length; i++)
        {
            foreach (var bit in new byte[] { 0x01, 0x80 })
            {
                using var opener = destination.CreateOpenerForTest(0);
                var bad = record.ToArray();
                bad[i] ^= bit;
                var e = Assert.Throws<SealedDataException>(() => opener.Open(bad, out _));
                var expected = i switch
                {
                    0 or 2 or 3 => SealedDataFailure.Malformed,   // version, reserved
                    >= 28 and < 32 => e.Failure,                    // length: malformed, truncated or too large, by value
                    _ => SealedDataFailure.Tampered,
                };
                Assert.Equal(expected, e.Failure);
                Assert.True(e.Failure is not SealedDataFailure.Replayed and not SealedDataFailure.OutOfOrder, $"byte {i}: {e.Failure}");
            }
        }
    }

    [Fact]
    public void Replayed_reordered_dropped_and_truncated_records_are_refused()
    {
        using var sealer = source.CreateSealer(0);
        var r = Enumerable.Range(0, 5).Select(i => sealer.Seal(SealedRecordKind.Pages, 0, (ulong)i, Payload(64, i))).ToArray();
        var end = sealer.Finish();

        SealedDataException Feed(params byte[][] records)
        {
            using var opener = destination.CreateOpenerForTest(0);
            return Assert.Throws<SealedDataException>(() =>
            {
                foreach (var x in records) opener.Open(x, out _);
                opener.Complete();
            });
        }

        var replay = Feed(r[0], r[1], r[1]);
        Assert.Equal(SealedDataFailure.Replayed, replay.Failure);
        Assert.Contains("record 1 was already accepted", replay.Message);
        Assert.Equal(SealedDataFailure.Replayed, Feed(r[0], r[1], r[2], r[0]).Failure);
        var reorder = Feed(r[0], r[2], r[1]);
        Assert.Equal(SealedDataFailure.OutOfOrder, reorder.Failure);
        Assert.Contains("records 1..1 were dropped or reordered", reorder.Message);
        Assert.Equal(SealedDataFailure.OutOfOrder, Feed(r[0], r[1], r[3], r[4], end).Failure); // one dropped
        Assert.Equal(SealedDataFailure.OutOfOrder, Feed(r[0], r[1], r[2], r[3], end).Failure); // last data record dropped
        Assert.Equal(SealedDataFailure.Truncated, Feed(r[0], r[1], r[2], r[3], r[4]).Failure); // end record dropped
        Assert.Equal(SealedDataFailure.Truncated, Feed().Failure);                             // nothing at all
        Assert.Equal(SealedDataFailure.AfterEnd, Feed(r[0], r[1], r[2], r[3], r[4], end, r[4]).Failure);
        Assert.Equal(SealedDataFailure.Truncated, Feed(r[0], r[1].AsSpan(0, r[1].Length - 1).ToArray()).Failure);
        Assert.Equal(SealedDataFailure.Truncated, Feed(r[0].AsSpan(0, 20).ToArray()).Failure);

        // And the untouched stream passes, so the checks above are not vacuous.
        using var good = destination.CreateOpenerForTest(0);
        foreach (var x in r) good.Open(x, out _);
        good.Open(end, out _);
        good.Complete();
    }

    [Fact]
    public void A_record_delivered_on_another_stream_is_refused()
    {
        using var s1 = source.CreateSealer(1);
        using var o2 = destination.CreateOpener(2);
        var e = Assert.Throws<SealedDataException>(() => o2.Open(s1.Seal(SealedRecordKind.Pages, 0, 0, Payload(10, 1)), out _));
        Assert.Equal(SealedDataFailure.WrongStream, e.Failure);
    }

    [Fact]
    public void A_refused_stream_stays_refused()
    {
        using var sealer = source.CreateSealer(0);
        using var opener = destination.CreateOpener(0);
        var r0 = sealer.Seal(SealedRecordKind.Pages, 0, 0, Payload(10, 1));
        var r1 = sealer.Seal(SealedRecordKind.Pages, 0, 1, Payload(10, 2));
        var bad = r0.ToArray();
        bad[^1] ^= 1;
        Assert.Throws<SealedDataException>(() => opener.Open(bad, out _));
        Assert.True(opener.HasFailed);
        // Even the genuine records are refused from now on: the migration must abort, not carry on.
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => opener.Open(r0, out _)).Failure);
        Assert.Throws<SealedDataException>(() => opener.Open(r1, out _));
        Assert.Throws<SealedDataException>(opener.Complete);
    }

    [Fact]
    public void Framing_distinguishes_need_more_bytes_from_garbage()
    {
        using var sealer = source.CreateSealer(0);
        var record = sealer.Seal(SealedRecordKind.Pages, 0, 0, Payload(100, 1));
        Assert.False(SealedRecord.TryGetLength(record.AsSpan(0, SealedRecord.HeaderSize - 1), out _));
        Assert.True(SealedRecord.TryGetLength(record.AsSpan(0, SealedRecord.HeaderSize), out var n));
        Assert.Equal(record.Length, n);
        var huge = record.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(huge.AsSpan(28), SealedRecord.MaxPayload + 1u);
        Assert.Equal(SealedDataFailure.TooLarge, Assert.Throws<SealedDataException>(() => SealedRecord.TryGetLength(huge, out _)).Failure);
        var version = record.ToArray();
        version[0] = 2;
        Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => SealedRecord.TryGetLength(version, out _)).Failure);
    }

    [Fact]
    public void A_finished_stream_accepts_no_more_records()
    {
        using var sealer = source.CreateSealer(0);
        sealer.Finish();
        Assert.Throws<InvalidOperationException>(() => sealer.Seal(SealedRecordKind.Pages, 0, 0, new byte[1]));
        Assert.Throws<InvalidOperationException>(() => sealer.Finish());
        Assert.Throws<ArgumentException>(() => source.CreateSealer(1).Seal(SealedRecordKind.End, 0, 0, new byte[16]));
    }

    [Fact]
    public void Parallel_streams_and_the_manifest_account_for_every_batch()
    {
        const int streams = 4, batches = 50;
        var sealers = Enumerable.Range(1, streams).Select(i => source.CreateSealer((uint)i)).ToArray();
        var wires = new List<byte[]>[streams];
        Parallel.For(0, streams, s =>
        {
            wires[s] = [];
            for (var b = 0; b < batches; b++) wires[s].Add(sealers[s].Seal(SealedRecordKind.Pages, (uint)(b / 10), (ulong)(s * 1000 + b), Payload(4096 * (1 + b % 3), s * 1000 + b)));
            wires[s].Add(sealers[s].Finish());
        });
        var manifest = MigrationManifest.FromSealers(sealers);
        using var control = source.CreateSealer(0);
        var manifestRecord = control.Seal(SealedRecordKind.Manifest, 0, 0, manifest.Encode());

        List<RecordOpener> Receive(Func<int, bool> deliverStream, Func<int, int> deliverCount)
        {
            var openers = new List<RecordOpener>();
            for (var s = 0; s < streams; s++)
            {
                if (!deliverStream(s)) continue;
                var o = destination.CreateOpenerForTest((uint)(s + 1));
                openers.Add(o);
                foreach (var w in wires[s].Take(deliverCount(s))) o.Open(w, out _);
            }
            return openers;
        }

        using var controlOpener = destination.CreateOpener(0);
        var received = MigrationManifest.Decode(controlOpener.Open(manifestRecord, out var info));
        Assert.Equal(SealedRecordKind.Manifest, info.Kind);
        Assert.Equal(manifest.Streams, received.Streams);

        received.Verify(Receive(_ => true, _ => batches + 1));
        var missing = Assert.Throws<SealedDataException>(() => received.Verify(Receive(s => s != 2, _ => batches + 1)));
        Assert.Equal(SealedDataFailure.Missing, missing.Failure);
        Assert.Contains("stream 3", missing.Message);
        var cut = Assert.Throws<SealedDataException>(() => received.Verify(Receive(_ => true, s => s == 1 ? 20 : batches + 1)));
        Assert.Equal(SealedDataFailure.Truncated, cut.Failure);
        Assert.Contains("20 of 50", cut.Message);
        var noEnd = Assert.Throws<SealedDataException>(() => received.Verify(Receive(_ => true, s => s == 0 ? batches : batches + 1)));
        Assert.Equal(SealedDataFailure.Truncated, noEnd.Failure);

        var partial = new MigrationManifest(manifest.Streams.Where(s => s.StreamId != 4));
        Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => partial.Verify(Receive(_ => true, _ => batches + 1))).Failure);
        Assert.Throws<InvalidOperationException>(() => MigrationManifest.FromSealers([source.CreateSealer(99)]));
    }

    [Fact]
    public void Malformed_manifests_are_refused()
    {
        var bytes = new MigrationManifest([new StreamSummary(1, 2, 3)]).Encode();
        for (var cut = 0; cut < bytes.Length; cut++)
        {
            Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => MigrationManifest.Decode(bytes.AsSpan(0, cut))).Failure);
        }
        byte[] twice = [.. "FMAN"u8, 1, 0, 2, 0, 0, 0, .. new byte[20], .. new byte[20]];
        Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => MigrationManifest.Decode(twice)).Failure);
    }
}

internal static class SessionTestExtensions
{
    /// <summary>
    /// Another opener for a stream that already has one. Sessions refuse that (a second opener would accept the
    /// whole stream again); the tests need it to replay one recorded stream into several fresh receivers.
    /// </summary>
    public static RecordOpener CreateOpenerForTest(this MigrationSession session, uint streamId) => session.CreateOpenerUnchecked(streamId);
}
