using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential.Tests;

public class HandshakeTests
{
    [Fact]
    public void Both_runtimes_attest_each_other_and_agree_on_keys()
    {
        using var fleet = new Fleet("src", "dst");
        var id = Guid.NewGuid();
        var (s, d) = fleet.Handshake("src", "dst", id);
        Assert.Equal(SessionState.Established, s.State);
        Assert.Equal(SessionState.Established, d.State);
        Assert.Equal(id, d.MigrationId);
        Assert.Equal(s.TranscriptHash, d.TranscriptHash);
        Assert.Equal("dst", s.PeerPlatform!.Name);
        Assert.Equal("src", d.PeerPlatform!.Name);
        Assert.Equal(s.ExportKey("checkpoint"), d.ExportKey("checkpoint"));
        Assert.NotEqual(s.ExportKey("checkpoint"), s.ExportKey("other"));

        // Both directions work, and each direction has its own key.
        using var toDst = s.CreateSealer(0);
        using var atDst = d.CreateOpener(0);
        using var toSrc = d.CreateSealer(0);
        using var atSrc = s.CreateOpener(0);
        Assert.Equal("hello"u8.ToArray(), atDst.Open(toDst.Seal(SealedRecordKind.Control, 0, 0, "hello"u8), out _));
        Assert.Equal("ready"u8.ToArray(), atSrc.Open(toSrc.Seal(SealedRecordKind.Control, 0, 0, "ready"u8), out _));
        using var atSrc1 = s.CreateOpener(1);
        using var toSrc1 = d.CreateSealer(1);
        using var toDst1 = s.CreateSealer(1);
        // A record the source sealed, reflected back to the source, does not open there.
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => atSrc1.Open(toDst1.Seal(SealedRecordKind.Control, 0, 0, "x"u8), out _)).Failure);
    }

    [Fact]
    public void Two_sessions_of_the_same_pair_have_unrelated_keys()
    {
        using var fleet = new Fleet("src", "dst");
        var id = Guid.NewGuid();
        var (s1, _) = fleet.Handshake("src", "dst", id);
        var (_, d2) = fleet.Handshake("src", "dst", id);
        Assert.NotEqual(s1.TranscriptHash, d2.TranscriptHash);
        using var sealer = s1.CreateSealer(0);
        using var opener = d2.CreateOpener(0);
        // A record recorded from one migration and replayed into another (same id, same host pair) does not open.
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => opener.Open(sealer.Seal(SealedRecordKind.Pages, 0, 0, new byte[4096]), out _)).Failure);
    }

    [Fact]
    public void Redirecting_to_an_unattested_destination_is_refused_by_the_source()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var d = fleet.Destination("mallory");
        var e = Assert.Throws<AttestationException>(() => s.ReceiveDestinationQuote(d.Respond(s.Start())));
        Assert.Equal(AttestationFailure.UntrustedPlatform, e.Reason);
        Assert.Equal(SessionState.Failed, s.State);
        Assert.Throws<InvalidOperationException>(() => s.CreateSealer(0));
    }

    [Fact]
    public void A_destination_with_another_measurement_is_refused_by_the_source()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var d = fleet.Destination("dst", measurement: Fleet.OtherMeasurement);
        var e = Assert.Throws<AttestationException>(() => s.ReceiveDestinationQuote(d.Respond(s.Start())));
        Assert.Equal(AttestationFailure.WrongMeasurement, e.Reason);
        Assert.Contains("another module or launch configuration", e.Message);
    }

    [Fact]
    public void An_unattested_or_different_source_is_refused_by_the_destination()
    {
        using var fleet = new Fleet("src", "dst");
        // The source's quote message is built by hand (an honest source would have refused earlier): the destination must refuse it.
        foreach (var (host, measurement, reason) in new[]
                 {
                     ("mallory", Fleet.WorkloadMeasurement, AttestationFailure.UntrustedPlatform),
                     ("src", Fleet.OtherMeasurement, AttestationFailure.WrongMeasurement),
                 })
        {
            var id = Guid.NewGuid();
            var d = fleet.Destination("dst", id);
            var m2 = d.Respond(Hello(id, RandomNumberGenerator.GetBytes(32)));
            var destinationNonce = m2.AsSpan(4 + 1 + 16, 32).ToArray();
            var quote = fleet.Host(host).CreateQuote(measurement, Point(), destinationNonce).Encode();
            var e = Assert.Throws<AttestationException>(() => d.ReceiveSourceQuote(SourceQuoteMessage(id, quote, new byte[32])));
            Assert.Equal(reason, e.Reason);
            Assert.Equal(SessionState.Failed, d.State);
        }
    }

    [Fact]
    public void A_replayed_destination_quote_is_refused()
    {
        using var fleet = new Fleet("src", "dst");
        var id = Guid.NewGuid();
        var old = fleet.Source("src", id);
        var recorded = fleet.Destination("dst", id).Respond(old.Start());
        var s = fleet.Source("src", id);
        s.Start();
        var e = Assert.Throws<AttestationException>(() => s.ReceiveDestinationQuote(recorded));
        Assert.Equal(AttestationFailure.WrongNonce, e.Reason);
    }

    [Fact]
    public void An_expired_quote_is_refused()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var m2 = fleet.Destination("dst").Respond(s.Start());
        fleet.Time.Advance(TimeSpan.FromMinutes(5)); // quotes live 2 minutes, skew allowance 30 s
        Assert.Equal(AttestationFailure.Expired, Assert.Throws<AttestationException>(() => s.ReceiveDestinationQuote(m2)).Reason);
    }

    [Fact]
    public void A_destination_expecting_another_migration_refuses_the_hello()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var d = fleet.Destination("dst", Guid.NewGuid());
        Assert.Equal(HandshakeFailure.WrongMigration, Assert.Throws<HandshakeException>(() => d.Respond(s.Start())).Reason);
    }

    [Fact]
    public void A_refusal_tells_the_peer_why()
    {
        using var fleet = new Fleet("src", "dst");
        var id = Guid.NewGuid();
        var s = fleet.Source("src", id);
        s.Start();
        var e = Assert.Throws<HandshakeException>(() => s.ReceiveDestinationQuote(MigrationSession.Refusal(id, "this host is draining")));
        Assert.Equal(HandshakeFailure.PeerRefused, e.Reason);
        Assert.Contains("this host is draining", e.Message);
    }

    [Fact]
    public void Steps_out_of_order_are_programming_errors()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var d = fleet.Destination("dst");
        Assert.Throws<InvalidOperationException>(() => s.ReceiveConfirmation([]));
        Assert.Throws<InvalidOperationException>(() => d.Start());
        Assert.Throws<InvalidOperationException>(() => s.Respond([]));
        Assert.Throws<InvalidOperationException>(() => d.CreateSealer(0));
        var (a, _) = fleet.Handshake("src", "dst");
        a.CreateSealer(3).Dispose();
        Assert.Throws<InvalidOperationException>(() => a.CreateSealer(3));
        a.CreateOpener(3).Dispose();
        Assert.Throws<InvalidOperationException>(() => a.CreateOpener(3));
        a.Dispose();
        Assert.Throws<ObjectDisposedException>(() => a.CreateSealer(4));
    }

    [Fact]
    public void A_message_of_another_step_is_refused()
    {
        using var fleet = new Fleet("src", "dst");
        var s = fleet.Source("src", Guid.NewGuid());
        var m1 = s.Start();
        Assert.Equal(HandshakeFailure.UnexpectedMessage, Assert.Throws<HandshakeException>(() => s.ReceiveDestinationQuote(m1)).Reason);
    }

    [Fact]
    public void An_invalid_ephemeral_key_is_refused()
    {
        using var fleet = new Fleet("src", "dst");
        var id = Guid.NewGuid();
        var s = fleet.Source("src", id);
        var hello = s.Start();
        var sourceNonce = hello.AsSpan(4 + 1 + 16, 32).ToArray();
        // A trusted platform quoting a point that is not on the curve.
        var notOnCurve = Point();
        notOnCurve[^1] ^= 1;
        var quote = fleet.Host("dst").CreateQuote(Fleet.WorkloadMeasurement, notOnCurve, sourceNonce).Encode();
        var e = Assert.Throws<HandshakeException>(() => s.ReceiveDestinationQuote(DestinationQuoteMessage(id, new byte[32], quote)));
        Assert.Equal(HandshakeFailure.InvalidKeyShare, e.Reason);
    }

    /// <summary>
    /// Every byte of every handshake message, modified in flight: the handshake never completes on both sides
    /// (the side that completes cannot exchange a single record with the other).
    /// </summary>
    [Fact]
    public void Any_modified_byte_of_the_handshake_prevents_a_shared_session()
    {
        using var fleet = new Fleet("src", "dst");
        var sizes = Transcript(fleet, -1, 0, out _);
        var attempts = 0;
        for (var message = 0; message < 4; message++)
        {
            for (var i = 0; i < sizes[message]; i++)
            {
                Transcript(fleet, message, i, out var outcome);
                attempts++;
                Assert.False(outcome.BothEstablished, $"message {message + 1}, byte {i} modified: both sides established");
                Assert.True(outcome.Refused, $"message {message + 1}, byte {i} modified: nobody refused");
            }
        }
        Assert.True(attempts > 600, $"{attempts}");
    }

    private readonly record struct Outcome(bool BothEstablished, bool Refused);

    private static int[] Transcript(Fleet fleet, int tamperMessage, int tamperByte, out Outcome outcome)
    {
        var id = Guid.NewGuid();
        var s = fleet.Source("src", id);
        var d = fleet.Destination("dst", id);
        var sizes = new int[4];
        byte[] Wire(int index, byte[] m)
        {
            sizes[index] = m.Length;
            if (index != tamperMessage) return m;
            var t = m.ToArray();
            t[tamperByte] ^= 0x20;
            return t;
        }
        var refused = false;
        try
        {
            var m2 = d.Respond(Wire(0, s.Start()));
            var m3 = s.ReceiveDestinationQuote(Wire(1, m2));
            var m4 = d.ReceiveSourceQuote(Wire(2, m3));
            s.ReceiveConfirmation(Wire(3, m4));
        }
        catch (ConfidentialException)
        {
            refused = true;
        }
        outcome = new Outcome(s.State == SessionState.Established && d.State == SessionState.Established, refused);
        return sizes;
    }

    private static byte[] Point()
    {
        using var k = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var q = k.ExportParameters(false).Q;
        return [0x04, .. q.X!, .. q.Y!];
    }

    // Handshake messages built from the documented layout (docs/confidential.md, "Handshake").
    private static byte[] Hello(Guid id, byte[] nonce) => [.. "FHS1"u8, 1, .. id.ToByteArray(), .. nonce];

    private static byte[] DestinationQuoteMessage(Guid id, byte[] nonce, byte[] quote) =>
        [.. "FHS1"u8, 2, .. id.ToByteArray(), .. nonce, .. U32(quote.Length), .. quote];

    private static byte[] SourceQuoteMessage(Guid id, byte[] quote, byte[] finished) =>
        [.. "FHS1"u8, 3, .. id.ToByteArray(), .. U32(quote.Length), .. quote, .. finished];

    private static byte[] U32(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)v);
        return b;
    }
}
