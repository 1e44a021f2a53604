using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential.Tests;

public class AttestationTests
{
    private static readonly byte[] EphemeralKey = NewPoint();

    private static byte[] NewPoint()
    {
        using var k = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var q = k.ExportParameters(false).Q;
        return [0x04, .. q.X!, .. q.Y!];
    }

    private static AttestationPolicy Policy(Fleet fleet, byte[] nonce, byte[]? measurement = null) => new()
    {
        ExpectedMeasurement = measurement ?? Fleet.WorkloadMeasurement,
        ExpectedNonce = nonce,
        Time = fleet.Time,
    };

    [Fact]
    public void A_fresh_quote_from_a_trusted_platform_is_accepted()
    {
        using var fleet = new Fleet("a", "b");
        var nonce = RandomNumberGenerator.GetBytes(32);
        var quote = fleet.Host("b").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, nonce);
        var verdict = fleet.Host("a").Verify(Quote.Decode(quote.Encode()), fleet.Trust, Policy(fleet, nonce));
        Assert.True(verdict.Accepted, verdict.ToString());
        Assert.Equal("b", verdict.Platform!.Name);
        Assert.Null(verdict.Failure);
        verdict.ThrowIfRefused();
    }

    [Fact]
    public void Quote_encoding_round_trips()
    {
        using var fleet = new Fleet("a");
        var quote = fleet.Host("a").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, new byte[32]);
        var back = Quote.Decode(quote.Encode());
        Assert.Equal(quote.Encode(), back.Encode());
        Assert.Equal(TeeKind.Software, back.Tee);
        Assert.Equal(fleet.Host("a").PlatformId, back.PlatformId);
        Assert.Equal(fleet.Time.Now, back.IssuedAt);
        Assert.Equal(fleet.Time.Now + fleet.Host("a").QuoteLifetime, back.ExpiresAt);
        Assert.Contains("tee=Software", back.ToString());
    }

    [Fact]
    public void Every_policy_refusal_has_its_reason()
    {
        using var fleet = new Fleet("a", "b");
        var a = fleet.Host("a");
        var nonce = RandomNumberGenerator.GetBytes(32);
        var good = fleet.Host("b").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, nonce);

        void Refused(AttestationFailure failure, Quote q, AttestationPolicy? policy = null, string? text = null)
        {
            var v = a.Verify(q, fleet.Trust, policy ?? Policy(fleet, nonce));
            Assert.False(v.Accepted);
            Assert.Equal(failure, v.Failure);
            if (text is not null) Assert.Contains(text, v.Reason);
            var e = Assert.Throws<AttestationException>(v.ThrowIfRefused);
            Assert.Equal(failure, e.Reason);
        }

        // Another measurement (another module or launch configuration).
        Refused(AttestationFailure.WrongMeasurement, fleet.Host("b").CreateQuote(Fleet.OtherMeasurement, EphemeralKey, nonce), text: "another module or launch configuration");
        // A quote answering an older challenge.
        Refused(AttestationFailure.WrongNonce, fleet.Host("b").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, RandomNumberGenerator.GetBytes(32)), text: "replayed or stale");
        // A platform outside the trust file.
        Refused(AttestationFailure.UntrustedPlatform, fleet.Host("mallory").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, nonce), text: "not in the trust file");
        // Trusted platform id with another platform's signature: mallory's quote relabelled as b's.
        var mallorys = fleet.Host("mallory").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, nonce);
        Refused(AttestationFailure.BadSignature, With(mallorys, platform: fleet.Host("b").PlatformId), text: "signature does not verify");
        // b's genuine quote with a field changed afterwards (here: the ephemeral key, as a man in the middle would).
        Refused(AttestationFailure.BadSignature, With(good, key: NewPoint()), text: "forged or modified");
        Refused(AttestationFailure.BadSignature, With(good, evidence: []));
        // A quote claiming another TEE kind.
        Refused(AttestationFailure.UnsupportedTee, With(good, tee: TeeKind.Sgx));

        // Time: expired, not yet valid, lifetime too long; the skew allowance at both edges.
        var issued = good.IssuedAt;
        var expires = good.ExpiresAt;
        var skew = TimeSpan.FromSeconds(30);
        AttestationPolicy At(DateTimeOffset now, TimeSpan? maxLifetime = null) => new()
        {
            ExpectedMeasurement = Fleet.WorkloadMeasurement,
            ExpectedNonce = nonce,
            ClockSkew = skew,
            MaxLifetime = maxLifetime ?? TimeSpan.FromMinutes(10),
            Time = new ManualTime(now),
        };
        Assert.True(a.Verify(good, fleet.Trust, At(expires + skew)).Accepted);
        Refused(AttestationFailure.Expired, good, At(expires + skew + TimeSpan.FromMilliseconds(1)), "expired");
        Assert.True(a.Verify(good, fleet.Trust, At(issued - skew)).Accepted);
        Refused(AttestationFailure.NotYetValid, good, At(issued - skew - TimeSpan.FromMilliseconds(1)));
        Refused(AttestationFailure.LifetimeTooLong, good, At(issued, maxLifetime: TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Malformed_quotes_are_refused_with_a_typed_error()
    {
        using var fleet = new Fleet("a");
        var bytes = fleet.Host("a").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, new byte[32]).Encode();
        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var e = Assert.Throws<AttestationException>(() => Quote.Decode(bytes.AsSpan(0, cut)));
            Assert.Equal(AttestationFailure.Malformed, e.Reason);
        }
        Assert.Equal(AttestationFailure.Malformed, Assert.Throws<AttestationException>(() => Quote.Decode([.. bytes, 0])).Reason);
        var badVersion = bytes.ToArray();
        badVersion[4] = 9;
        Assert.Contains("version 9", Assert.Throws<AttestationException>(() => Quote.Decode(badVersion)).Message);
    }

    [Fact]
    public void Any_modified_byte_of_a_quote_is_refused()
    {
        using var fleet = new Fleet("a", "b");
        var nonce = RandomNumberGenerator.GetBytes(32);
        var bytes = fleet.Host("b").CreateQuote(Fleet.WorkloadMeasurement, EphemeralKey, nonce).Encode();
        for (var i = 0; i < bytes.Length; i++)
        {
            var bad = bytes.ToArray();
            bad[i] ^= 0x01;
            QuoteVerdict verdict;
            try
            {
                verdict = fleet.Host("a").Verify(Quote.Decode(bad), fleet.Trust, Policy(fleet, nonce));
            }
            catch (AttestationException)
            {
                continue; // refused while parsing
            }
            Assert.False(verdict.Accepted, $"a quote with byte {i} modified was accepted");
        }
    }

    private static Quote With(Quote q, TeeKind? tee = null, byte[]? platform = null, byte[]? key = null, byte[]? evidence = null) => new()
    {
        Tee = tee ?? q.Tee,
        PlatformId = platform ?? q.PlatformId,
        Measurement = q.Measurement,
        EphemeralPublicKey = key ?? q.EphemeralPublicKey,
        Nonce = q.Nonce,
        IssuedAt = q.IssuedAt,
        ExpiresAt = q.ExpiresAt,
        Evidence = evidence ?? q.Evidence,
    };
}
