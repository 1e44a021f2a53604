using System.Globalization;

namespace Ferry.Enclave.Confidential;

/// <summary>Which TEE produced a quote. On the wire: append only, never renumber.</summary>
public enum TeeKind : ushort
{
    /// <summary>Ferry's software backend: no hardware isolation (docs/confidential.md).</summary>
    Software = 1,
    /// <summary>Reserved for an Intel SGX (DCAP) backend.</summary>
    Sgx = 2,
    /// <summary>Reserved for an Intel TDX backend.</summary>
    Tdx = 3,
    /// <summary>Reserved for an AMD SEV-SNP backend.</summary>
    SevSnp = 4,
}

/// <summary>
/// An attestation quote: a platform's signed statement that a runtime with <see cref="Measurement"/> holds the
/// private half of <see cref="EphemeralPublicKey"/> and answers the challenge <see cref="Nonce"/>. The body is
/// backend-neutral; <see cref="Evidence"/> is what the backend produced to vouch for it (software backend: an
/// ECDSA P-256 signature by the host's attestation key; an SGX backend would put a DCAP quote whose REPORTDATA
/// is SHA-256 of <see cref="SignedBytes"/>). Format in docs/confidential.md.
/// </summary>
public sealed class Quote
{
    public const ushort CurrentVersion = 1;
    public const int PlatformIdSize = 32;
    public const int NonceSize = 32;
    public const int MaxEvidence = ushort.MaxValue;

    private static ReadOnlySpan<byte> Magic => "FQUO"u8;

    public ushort Version { get; init; } = CurrentVersion;
    public required TeeKind Tee { get; init; }
    /// <summary>SHA-256 of the platform's public attestation key (SubjectPublicKeyInfo DER) for the software backend.</summary>
    public required byte[] PlatformId { get; init; }
    public required byte[] Measurement { get; init; }
    /// <summary>The runtime's ephemeral ECDH P-256 public key, SEC1 uncompressed (0x04 ‖ X ‖ Y).</summary>
    public required byte[] EphemeralPublicKey { get; init; }
    /// <summary>The challenger's nonce this quote answers.</summary>
    public required byte[] Nonce { get; init; }
    /// <summary>Issue time, millisecond precision (the encoding keeps Unix milliseconds).</summary>
    public required DateTimeOffset IssuedAt { get; init; }
    public required DateTimeOffset ExpiresAt { get; init; }
    public byte[] Evidence { get; init; } = [];

    /// <summary>The bytes the evidence covers: the whole encoding except the evidence field.</summary>
    public byte[] SignedBytes()
    {
        var w = new WireWriter(256);
        WriteBody(w);
        return w.ToArray();
    }

    public byte[] Encode()
    {
        var w = new WireWriter(256 + Evidence.Length);
        WriteBody(w);
        w.Blob16(Evidence);
        return w.ToArray();
    }

    private void WriteBody(WireWriter w)
    {
        if (PlatformId.Length != PlatformIdSize) throw new ArgumentException($"platform id must be {PlatformIdSize} bytes");
        if (Measurement.Length != Confidential.Measurement.Size) throw new ArgumentException($"measurement must be {Confidential.Measurement.Size} bytes");
        w.Bytes(Magic);
        w.U16(Version);
        w.U16((ushort)Tee);
        w.Bytes(PlatformId);
        w.Bytes(Measurement);
        w.Blob16(EphemeralPublicKey);
        w.Blob16(Nonce);
        w.I64(IssuedAt.ToUnixTimeMilliseconds());
        w.I64(ExpiresAt.ToUnixTimeMilliseconds());
    }

    /// <summary>Parses a quote; throws <see cref="AttestationException"/> (<see cref="AttestationFailure.Malformed"/>) on any format error.</summary>
    public static Quote Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var r = new WireReader(bytes);
            if (!r.Bytes(4, "magic").SequenceEqual(Magic)) throw new WireFormatException("not a Ferry quote (bad magic)");
            var version = r.U16("version");
            if (version != CurrentVersion) throw new WireFormatException($"quote version {version}; this runtime reads version {CurrentVersion}");
            var tee = (TeeKind)r.U16("TEE kind");
            var platform = r.Bytes(PlatformIdSize, "platform id").ToArray();
            var measurement = r.Bytes(Confidential.Measurement.Size, "measurement").ToArray();
            var key = r.Blob16("ephemeral public key", 1024).ToArray();
            var nonce = r.Blob16("nonce", 1024).ToArray();
            var issued = r.I64("issued-at");
            var expires = r.I64("expires-at");
            var evidence = r.Blob16("evidence", MaxEvidence).ToArray();
            r.End("quote");
            return new Quote
            {
                Version = version,
                Tee = tee,
                PlatformId = platform,
                Measurement = measurement,
                EphemeralPublicKey = key,
                Nonce = nonce,
                IssuedAt = FromMs(issued),
                ExpiresAt = FromMs(expires),
                Evidence = evidence,
            };
        }
        catch (WireFormatException e)
        {
            throw new AttestationException(AttestationFailure.Malformed, e.Message);
        }
    }

    private static DateTimeOffset FromMs(long ms)
    {
        try
        {
            return DateTimeOffset.FromUnixTimeMilliseconds(ms);
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new WireFormatException($"timestamp {ms} ms is out of range");
        }
    }

    /// <summary>A human-readable summary (for `ferry attest`).</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"quote v{Version} tee={Tee} platform={Confidential.Measurement.Hex(PlatformId)} measurement={Confidential.Measurement.Hex(Measurement)} " +
        $"nonce={Confidential.Measurement.Hex(Nonce)} issued={IssuedAt:O} expires={ExpiresAt:O} evidence={Evidence.Length} bytes");
}
