using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>
/// The software TEE backend: a stand-in with the same interface as a hardware TEE and NO hardware isolation.
/// Each host has an ECDSA P-256 attestation key pair in its state directory (created on first use, mode 0600);
/// a quote is signed with it, and trust comes from the fleet trust file listing the accepted public keys.
/// The platform sealing key is derived from the same private key with HKDF, so data sealed here opens only here.
/// Anyone with root on the host can read the key file and the runtime's memory: this backend protects
/// workloads from the network, from other hosts and from agents, not from the host it runs on
/// (docs/confidential.md, "The software backend and its limits").
/// </summary>
public sealed class SoftwareTeeBackend : ITeeBackend, IDisposable
{
    public const string KeyFileName = "platform-key.pem";

    private static ReadOnlySpan<byte> QuoteSignatureDomain => "FERRY-QUOTE-SIGNATURE-V1"u8;
    private static ReadOnlySpan<byte> SealMagic => "FPSL"u8;
    private const ushort SealVersion = 1;
    private const int SealHeaderSize = 4 + 2 + Quote.PlatformIdSize + 12;
    private const int TagSize = 16;

    private readonly ECDsa key;
    private readonly AesGcm sealing;
    private readonly TimeProvider time;
    private readonly Lock sealLock = new(); // AesGcm and ECDsa instances are not documented as thread-safe

    private SoftwareTeeBackend(ECDsa key, string keyPath, TimeProvider time, TimeSpan quoteLifetime)
    {
        this.key = key;
        this.time = time;
        KeyPath = keyPath;
        QuoteLifetime = quoteLifetime;
        PublicKey = key.ExportSubjectPublicKeyInfo();
        PlatformId = TrustedPlatform.SoftwarePlatformId(PublicKey);
        var parameters = key.ExportParameters(includePrivateParameters: true);
        try
        {
            // The sealing key is a separate HKDF output of the private scalar, bound to the platform id, so it
            // never equals (or reveals) the signing key; SGX derives its sealing keys from a CPU secret the same way.
            var sealKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, parameters.D!, 32,
                salt: "FERRY-SOFTWARE-TEE-V1"u8.ToArray(), info: [.. "platform sealing key "u8, .. PlatformId]);
            sealing = new AesGcm(sealKey, TagSize);
            CryptographicOperations.ZeroMemory(sealKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(parameters.D);
        }
    }

    public TeeKind Kind => TeeKind.Software;
    public byte[] PlatformId { get; }
    /// <summary>The attestation public key, SubjectPublicKeyInfo DER (what the trust file lists).</summary>
    public byte[] PublicKey { get; }
    public string KeyPath { get; }
    public TimeSpan QuoteLifetime { get; }

    /// <summary>
    /// Opens the host's platform key in <paramref name="stateDirectory"/>, creating the directory (0700) and the key
    /// (0600) on first use. Refuses a key file that is readable by group or others, unreadable, or not a P-256 key.
    /// </summary>
    public static SoftwareTeeBackend OpenOrCreate(string stateDirectory, TimeProvider? time = null, TimeSpan? quoteLifetime = null)
    {
        var dir = Path.GetFullPath(stateDirectory);
        var path = Path.Combine(dir, KeyFileName);
        try
        {
            if (!Directory.Exists(dir))
            {
                if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
                else Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            if (!File.Exists(path)) CreateKeyFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlatformKeyException($"cannot create the platform key in {dir}: {e.Message}", e);
        }
        return Open(stateDirectory, time, quoteLifetime);
    }

    /// <summary>Opens an existing platform key; never creates one.</summary>
    public static SoftwareTeeBackend Open(string stateDirectory, TimeProvider? time = null, TimeSpan? quoteLifetime = null)
    {
        var path = Path.Combine(Path.GetFullPath(stateDirectory), KeyFileName);
        var lifetime = quoteLifetime ?? TimeSpan.FromMinutes(2);
        if (lifetime <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(quoteLifetime), "quote lifetime must be positive");
        string pem;
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                var mode = File.GetUnixFileMode(path);
                const UnixFileMode groupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
                                                  UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
                if ((mode & groupOrOther) != 0)
                {
                    throw new PlatformKeyException($"platform key {path} is accessible by group or others (mode {Convert.ToString((int)mode, 8)}); run: chmod 600 {path}");
                }
            }
            pem = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            throw new PlatformKeyException($"platform key {path} does not exist");
        }
        catch (DirectoryNotFoundException)
        {
            throw new PlatformKeyException($"platform key {path} does not exist (no state directory)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlatformKeyException($"cannot read platform key {path}: {e.Message}", e);
        }
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != "1.2.840.10045.3.1.7")
            {
                throw new PlatformKeyException($"platform key {path} is not an ECDSA P-256 key");
            }
            return new SoftwareTeeBackend(key, path, time ?? TimeProvider.System, lifetime);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new PlatformKeyException($"platform key {path} is corrupt (expected a PEM PKCS#8 ECDSA P-256 private key): {e.Message}", e);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    private static void CreateKeyFile(string path)
    {
        using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = fresh.ExportPkcs8PrivateKeyPem();
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(tmp, options))
        using (var w = new StreamWriter(fs))
        {
            w.Write(pem);
            w.Flush();
            fs.Flush(flushToDisk: true);
        }
        try
        {
            // No overwrite: if another process created the key first, keep theirs (both then use the same key).
            File.Move(tmp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(tmp);
        }
    }

    /// <summary>This host's entry for the fleet trust file (what `ferry attest` prints).</summary>
    public TrustedPlatform TrustEntry(string name) => new(name, TeeKind.Software, PlatformId, PublicKey);

    public Quote CreateQuote(byte[] measurement, byte[] ephemeralPublicKey, byte[] nonce)
    {
        ArgumentNullException.ThrowIfNull(measurement);
        ArgumentNullException.ThrowIfNull(ephemeralPublicKey);
        ArgumentNullException.ThrowIfNull(nonce);
        if (measurement.Length != Measurement.Size) throw new ArgumentException($"measurement must be {Measurement.Size} bytes", nameof(measurement));
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        var body = new Quote
        {
            Tee = TeeKind.Software,
            PlatformId = PlatformId,
            Measurement = measurement,
            EphemeralPublicKey = ephemeralPublicKey,
            Nonce = nonce,
            IssuedAt = now,
            ExpiresAt = now + QuoteLifetime,
        };
        byte[] signature;
        lock (sealLock)
        {
            signature = key.SignData((byte[])[.. QuoteSignatureDomain, .. body.SignedBytes()], HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        return new Quote
        {
            Tee = body.Tee,
            PlatformId = body.PlatformId,
            Measurement = body.Measurement,
            EphemeralPublicKey = body.EphemeralPublicKey,
            Nonce = body.Nonce,
            IssuedAt = body.IssuedAt,
            ExpiresAt = body.ExpiresAt,
            Evidence = signature,
        };
    }

    public QuoteVerdict Verify(Quote quote, TrustStore trust, AttestationPolicy policy) => VerifySoftwareQuote(quote, trust, policy);

    /// <summary>Verification of software-backend quotes; needs no private key, so any runtime can check any software quote.</summary>
    public static QuoteVerdict VerifySoftwareQuote(Quote quote, TrustStore trust, AttestationPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(quote);
        ArgumentNullException.ThrowIfNull(trust);
        ArgumentNullException.ThrowIfNull(policy);
        if (quote.Tee != TeeKind.Software)
        {
            return QuoteVerdict.Refuse(AttestationFailure.UnsupportedTee, $"the quote comes from a {quote.Tee} backend; this runtime verifies software quotes only");
        }
        if (!trust.TryGet(quote.PlatformId, out var platform))
        {
            return QuoteVerdict.Refuse(AttestationFailure.UntrustedPlatform,
                $"platform {Measurement.Hex(quote.PlatformId)} is not in the trust file ({trust.Platforms.Count} platforms accepted); add its `ferry attest` entry if it belongs to the fleet");
        }
        if (platform.Tee != TeeKind.Software)
        {
            return QuoteVerdict.Refuse(AttestationFailure.UnsupportedTee, $"platform '{platform.Name}' is listed as {platform.Tee}, but sent a software quote");
        }
        bool valid;
        using (var pub = ECDsa.Create())
        {
            pub.ImportSubjectPublicKeyInfo(platform.PublicKey, out _);
            valid = quote.Evidence.Length == 64 &&
                    pub.VerifyData((byte[])[.. QuoteSignatureDomain, .. quote.SignedBytes()], quote.Evidence, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        if (!valid)
        {
            return QuoteVerdict.Refuse(AttestationFailure.BadSignature,
                $"the quote claims platform '{platform.Name}' but its signature does not verify with that platform's key (forged or modified)");
        }
        return policy.Check(quote, platform);
    }

    /// <summary>
    /// Blob: "FPSL" ‖ u16 version ‖ platform id (32) ‖ random nonce (12) ‖ ciphertext ‖ tag (16). The GCM associated
    /// data is a domain label, the blob header and the caller's <paramref name="aad"/>. Random 96-bit nonces are
    /// fine here: platform sealing is used for few, small items (epochs, checkpoint keys), far below 2^32 per key.
    /// </summary>
    public byte[] SealToPlatform(ReadOnlySpan<byte> data, ReadOnlySpan<byte> aad)
    {
        var blob = new byte[SealHeaderSize + data.Length + TagSize];
        SealMagic.CopyTo(blob);
        BitConverter.TryWriteBytes(blob.AsSpan(4), SealVersion);
        PlatformId.CopyTo(blob.AsSpan(6));
        var nonce = blob.AsSpan(6 + Quote.PlatformIdSize, 12);
        RandomNumberGenerator.Fill(nonce);
        var fullAad = SealAad(blob.AsSpan(0, SealHeaderSize), aad);
        lock (sealLock)
        {
            sealing.Encrypt(nonce, data, blob.AsSpan(SealHeaderSize, data.Length), blob.AsSpan(SealHeaderSize + data.Length), fullAad);
        }
        return blob;
    }

    public byte[] UnsealFromPlatform(ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> aad)
    {
        if (sealedData.Length < SealHeaderSize + TagSize || !sealedData[..4].SequenceEqual(SealMagic))
        {
            throw new SealedDataException(SealedDataFailure.Malformed, "not a platform-sealed blob (too short or bad magic)");
        }
        var version = BitConverter.ToUInt16(sealedData.Slice(4, 2));
        if (version != SealVersion) throw new SealedDataException(SealedDataFailure.Malformed, $"platform-sealed blob version {version}; this runtime reads {SealVersion}");
        var platform = sealedData.Slice(6, Quote.PlatformIdSize);
        if (!platform.SequenceEqual(PlatformId))
        {
            throw new SealedDataException(SealedDataFailure.WrongPlatform,
                $"sealed by platform {Measurement.Short(platform)}…, this is platform {Measurement.Short(PlatformId)}…; platform-sealed data never leaves its host");
        }
        var nonce = sealedData.Slice(6 + Quote.PlatformIdSize, 12);
        var length = sealedData.Length - SealHeaderSize - TagSize;
        var plain = new byte[length];
        var fullAad = SealAad(sealedData[..SealHeaderSize], aad);
        try
        {
            lock (sealLock)
            {
                sealing.Decrypt(nonce, sealedData.Slice(SealHeaderSize, length), sealedData[^TagSize..], plain, fullAad);
            }
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new SealedDataException(SealedDataFailure.Tampered, "platform-sealed blob failed authentication: modified, or sealed for another purpose");
        }
        return plain;
    }

    private static byte[] SealAad(ReadOnlySpan<byte> header, ReadOnlySpan<byte> aad)
    {
        var w = new WireWriter(64 + aad.Length);
        w.Bytes("FERRY-PLATFORM-SEAL-V1"u8);
        w.Bytes(header);
        w.Blob32(aad);
        return w.ToArray();
    }

    public void Dispose()
    {
        key.Dispose();
        sealing.Dispose();
    }
}
