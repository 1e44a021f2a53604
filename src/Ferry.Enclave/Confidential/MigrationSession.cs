using System.Security.Cryptography;
using System.Text;

namespace Ferry.Enclave.Confidential;

/// <summary>Which end of a migration a session is. On the wire (record AAD direction = sender's role): append only.</summary>
public enum SessionRole : byte
{
    Source = 1,
    Destination = 2,
}

public enum SessionState
{
    /// <summary>Created; the source calls <see cref="MigrationSession.Start"/>, the destination waits for the hello.</summary>
    Created,
    /// <summary>Source: hello sent, waiting for the destination's quote.</summary>
    AwaitingDestinationQuote,
    /// <summary>Destination: quote sent, waiting for the source's quote and key confirmation.</summary>
    AwaitingSourceQuote,
    /// <summary>Source: its quote sent, waiting for the destination's key confirmation.</summary>
    AwaitingConfirmation,
    /// <summary>Both sides attested and hold the same keys; records can be sealed and opened.</summary>
    Established,
    /// <summary>A step failed; the session is unusable (the source keeps running its workload).</summary>
    Failed,
}

/// <summary>Verification settings for a session's peer quote.</summary>
public sealed class SessionOptions
{
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan MaxQuoteLifetime { get; init; } = TimeSpan.FromMinutes(10);
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// The mutual-attestation handshake between a migration's source and destination runtimes, and the keys it yields.
/// Transport-agnostic: each step consumes and produces byte arrays that the integration carries over any stream.
/// <code>
///   source                                       destination
///   Start()                     ── hello ──►     Respond(hello)
///   ReceiveDestinationQuote(m2) ◄─ quote_D ──
///                               ── quote_S, finished_S ─► ReceiveSourceQuote(m3)
///   ReceiveConfirmation(m4)     ◄─ finished_D ──
/// </code>
/// Each quote binds its sender's ephemeral ECDH P-256 key and the peer's fresh nonce; the session keys are
/// HKDF-SHA256 of the ECDH secret salted with the transcript hash (both quotes, both nonces, the migration id),
/// one key per direction; the finished MACs confirm both derived the same keys. docs/confidential.md has the details.
/// </summary>
public sealed class MigrationSession : IDisposable
{
    private const byte MsgHello = 1, MsgDestinationQuote = 2, MsgSourceQuote = 3, MsgConfirm = 4, MsgRefusal = 5;
    private const int MaxQuoteBytes = (1 << 16) + 1024;
    private const int FinishedSize = 32;
    private static ReadOnlySpan<byte> Magic => "FHS1"u8;

    private readonly ITeeBackend tee;
    private readonly TrustStore trust;
    private readonly byte[] measurement;
    private readonly Guid? expectedMigrationId;
    private readonly SessionOptions options;
    private readonly HashSet<uint> sealedStreams = [];
    private readonly HashSet<uint> openedStreams = [];

    private bool disposed;
    private ECDiffieHellman? ephemeral;
    private byte[]? ephemeralPublic;
    private byte[]? ownNonce;
    private byte[]? peerNonce;
    private byte[]? hello;
    private byte[]? destinationQuoteMessage;
    private byte[]? sendKey, receiveKey, sourceFinishedKey, destinationFinishedKey, exporterSecret;

    private MigrationSession(SessionRole role, ITeeBackend tee, TrustStore trust, byte[] measurement, Guid migrationId, Guid? expected, SessionOptions? options)
    {
        ArgumentNullException.ThrowIfNull(tee);
        ArgumentNullException.ThrowIfNull(trust);
        ArgumentNullException.ThrowIfNull(measurement);
        if (measurement.Length != Measurement.Size) throw new ArgumentException($"measurement must be {Measurement.Size} bytes", nameof(measurement));
        Role = role;
        this.tee = tee;
        this.trust = trust;
        this.measurement = measurement.ToArray();
        MigrationId = migrationId;
        expectedMigrationId = expected;
        this.options = options ?? new SessionOptions();
    }

    /// <summary>The source side of migration <paramref name="migrationId"/>; <paramref name="measurement"/> is the running workload's.</summary>
    public static MigrationSession CreateSource(ITeeBackend tee, TrustStore trust, byte[] measurement, Guid migrationId, SessionOptions? options = null) =>
        new(SessionRole.Source, tee, trust, measurement, migrationId, null, options);

    /// <summary>
    /// The destination side. If <paramref name="expectedMigrationId"/> is given, a hello for any other migration is refused;
    /// otherwise the session adopts the hello's id (the id is authenticated by the transcript either way).
    /// </summary>
    public static MigrationSession CreateDestination(ITeeBackend tee, TrustStore trust, byte[] measurement, Guid? expectedMigrationId = null, SessionOptions? options = null) =>
        new(SessionRole.Destination, tee, trust, measurement, expectedMigrationId ?? Guid.Empty, expectedMigrationId, options);

    public SessionRole Role { get; }
    public SessionState State { get; private set; } = SessionState.Created;
    public Guid MigrationId { get; private set; }
    /// <summary>The peer's verified quote, once received and accepted.</summary>
    public Quote? PeerQuote { get; private set; }
    /// <summary>The peer's trust-file entry, once its quote was accepted.</summary>
    public TrustedPlatform? PeerPlatform { get; private set; }
    /// <summary>SHA-256 of the handshake transcript (both quotes, both nonces, the migration id); null until keys exist.</summary>
    public byte[]? TranscriptHash { get; private set; }

    // ───────────────────────────── source ─────────────────────────────

    /// <summary>Source, step 1: the hello (migration id and the source's fresh nonce).</summary>
    public byte[] Start()
    {
        Expect(SessionRole.Source, SessionState.Created, nameof(Start));
        ownNonce = RandomNumberGenerator.GetBytes(Quote.NonceSize);
        var w = Header(MsgHello);
        w.Bytes(ownNonce);
        hello = w.ToArray();
        State = SessionState.AwaitingDestinationQuote;
        return hello;
    }

    /// <summary>
    /// Source, step 2: verifies the destination's quote (trusted platform, same measurement, answers our nonce,
    /// unexpired), derives the keys, and returns the source's quote with its key confirmation.
    /// Throws <see cref="AttestationException"/> or <see cref="HandshakeException"/>; the session is then failed.
    /// </summary>
    public byte[] ReceiveDestinationQuote(ReadOnlySpan<byte> message)
    {
        Expect(SessionRole.Source, SessionState.AwaitingDestinationQuote, nameof(ReceiveDestinationQuote));
        return Guarded(message, m =>
        {
            destinationQuoteMessage = m.ToArray();
            var r = Open(m, MsgDestinationQuote);
            peerNonce = r.Bytes(Quote.NonceSize, "destination nonce").ToArray();
            var quoteBytes = r.Blob32("destination quote", MaxQuoteBytes).ToArray();
            r.End("destination quote message");
            var quote = Quote.Decode(quoteBytes);
            Accept(quote);

            ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            ephemeralPublic = ExportPoint(ephemeral);
            var ownQuote = tee.CreateQuote(measurement, ephemeralPublic, peerNonce).Encode();
            DeriveKeys(quote.EphemeralPublicKey, ownQuote);

            var w = Header(MsgSourceQuote);
            w.Blob32(ownQuote);
            w.Bytes(HMACSHA256.HashData(sourceFinishedKey!, TranscriptHash!));
            State = SessionState.AwaitingConfirmation;
            return w.ToArray();
        });
    }

    /// <summary>Source, step 3: checks the destination's key confirmation; the session is then established.</summary>
    public void ReceiveConfirmation(ReadOnlySpan<byte> message)
    {
        Expect(SessionRole.Source, SessionState.AwaitingConfirmation, nameof(ReceiveConfirmation));
        Guarded(message, m =>
        {
            var r = Open(m, MsgConfirm);
            var finished = r.Bytes(FinishedSize, "destination finished").ToArray();
            r.End("confirmation message");
            if (!CryptographicOperations.FixedTimeEquals(finished, HMACSHA256.HashData(destinationFinishedKey!, TranscriptHash!)))
            {
                throw new HandshakeException(HandshakeFailure.KeyConfirmationFailed, "the destination's key confirmation does not match: it derived other keys (tampered transcript)");
            }
            State = SessionState.Established;
            return [];
        });
    }

    // ─────────────────────────── destination ───────────────────────────

    /// <summary>Destination, step 1: answers the source's hello with a quote binding our ephemeral key and the source's nonce, and our own nonce.</summary>
    public byte[] Respond(ReadOnlySpan<byte> helloMessage)
    {
        Expect(SessionRole.Destination, SessionState.Created, nameof(Respond));
        return Guarded(helloMessage, m =>
        {
            var r = Open(m, MsgHello);
            peerNonce = r.Bytes(Quote.NonceSize, "source nonce").ToArray();
            r.End("hello");
            hello = m.ToArray();
            ownNonce = RandomNumberGenerator.GetBytes(Quote.NonceSize);
            ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            ephemeralPublic = ExportPoint(ephemeral);
            var quote = tee.CreateQuote(measurement, ephemeralPublic, peerNonce).Encode();
            var w = Header(MsgDestinationQuote);
            w.Bytes(ownNonce);
            w.Blob32(quote);
            destinationQuoteMessage = w.ToArray();
            State = SessionState.AwaitingSourceQuote;
            return destinationQuoteMessage;
        });
    }

    /// <summary>
    /// Destination, step 2: verifies the source's quote and key confirmation, and returns our confirmation; the
    /// session is then established. Throws <see cref="AttestationException"/> or <see cref="HandshakeException"/>.
    /// </summary>
    public byte[] ReceiveSourceQuote(ReadOnlySpan<byte> message)
    {
        Expect(SessionRole.Destination, SessionState.AwaitingSourceQuote, nameof(ReceiveSourceQuote));
        return Guarded(message, m =>
        {
            var r = Open(m, MsgSourceQuote);
            var quoteBytes = r.Blob32("source quote", MaxQuoteBytes).ToArray();
            var finished = r.Bytes(FinishedSize, "source finished").ToArray();
            r.End("source quote message");
            var quote = Quote.Decode(quoteBytes);
            Accept(quote);
            DeriveKeys(quote.EphemeralPublicKey, quoteBytes);
            if (!CryptographicOperations.FixedTimeEquals(finished, HMACSHA256.HashData(sourceFinishedKey!, TranscriptHash!)))
            {
                throw new HandshakeException(HandshakeFailure.KeyConfirmationFailed, "the source's key confirmation does not match: it derived other keys (tampered transcript)");
            }
            var w = Header(MsgConfirm);
            w.Bytes(HMACSHA256.HashData(destinationFinishedKey!, TranscriptHash!));
            State = SessionState.Established;
            return w.ToArray();
        });
    }

    // ───────────────────────────── refusals ─────────────────────────────

    /// <summary>
    /// A refusal message to send the peer instead of the next handshake message, so its operator sees why (e.g. the
    /// <see cref="Exception.Message"/> of the refusal). Unauthenticated and informational only: receiving one fails the session.
    /// </summary>
    public static byte[] Refusal(Guid migrationId, string reason)
    {
        var w = new WireWriter();
        w.Bytes(Magic);
        w.U8(MsgRefusal);
        w.Bytes(migrationId.ToByteArray());
        var text = reason.Length > 2000 ? reason[..2000] : reason;
        w.Blob32(Encoding.UTF8.GetBytes(text));
        return w.ToArray();
    }

    // ───────────────────────────── records ─────────────────────────────

    /// <summary>
    /// A sealer for outgoing stream <paramref name="streamId"/> (sender's direction). Each stream id may be opened
    /// for sealing once per session: (direction key, stream id, sequence) is the GCM nonce, so it must never repeat.
    /// </summary>
    public RecordSealer CreateSealer(uint streamId)
    {
        ExpectEstablished();
        if (!sealedStreams.Add(streamId)) throw new InvalidOperationException($"stream {streamId} already has a sealer in this session (nonces would repeat)");
        return new RecordSealer(sendKey!, MigrationId, Role, streamId);
    }

    /// <summary>
    /// An opener for incoming stream <paramref name="streamId"/> (the peer's direction); once per stream id, so that a
    /// whole stream can never be accepted twice (e.g. replayed after a reconnect over newer pages).
    /// </summary>
    public RecordOpener CreateOpener(uint streamId)
    {
        ExpectEstablished();
        if (!openedStreams.Add(streamId)) throw new InvalidOperationException($"stream {streamId} already has an opener in this session");
        return new RecordOpener(receiveKey!, MigrationId, Role == SessionRole.Source ? SessionRole.Destination : SessionRole.Source, streamId);
    }

    /// <summary>For tests only (InternalsVisibleTo): an opener without the once-per-stream check.</summary>
    internal RecordOpener CreateOpenerUnchecked(uint streamId)
    {
        ExpectEstablished();
        return new RecordOpener(receiveKey!, MigrationId, Role == SessionRole.Source ? SessionRole.Destination : SessionRole.Source, streamId);
    }

    /// <summary>
    /// A secret both runtimes can derive for another purpose (e.g. a checkpoint key agreed for this destination),
    /// independent of the record keys: HKDF-Expand(exporter secret, "FERRY-EXPORT " ‖ label).
    /// </summary>
    public byte[] ExportKey(string label, int length = 32)
    {
        ExpectEstablished();
        ArgumentException.ThrowIfNullOrEmpty(label);
        return HKDF.Expand(HashAlgorithmName.SHA256, exporterSecret!, length, [.. "FERRY-EXPORT "u8, .. Encoding.UTF8.GetBytes(label)]);
    }

    // ───────────────────────────── internals ─────────────────────────────

    private byte[] Guarded(ReadOnlySpan<byte> message, Func<byte[], byte[]> step)
    {
        try
        {
            return step(message.ToArray());
        }
        catch (WireFormatException e)
        {
            State = SessionState.Failed;
            throw new HandshakeException(HandshakeFailure.Malformed, e.Message);
        }
        catch
        {
            State = SessionState.Failed;
            throw;
        }
    }

    private WireWriter Header(byte type)
    {
        var w = new WireWriter();
        w.Bytes(Magic);
        w.U8(type);
        w.Bytes(MigrationId.ToByteArray());
        return w;
    }

    private WireReader Open(byte[] message, byte expectedType)
    {
        var r = new WireReader(message);
        if (!r.Bytes(4, "magic").SequenceEqual(Magic)) throw new WireFormatException("not a Ferry handshake message (bad magic)");
        var type = r.U8("message type");
        var id = new Guid(r.Bytes(16, "migration id"));
        if (type == MsgRefusal)
        {
            var reason = Encoding.UTF8.GetString(r.Blob32("refusal reason", 8192));
            throw new HandshakeException(HandshakeFailure.PeerRefused, $"the peer refused migration {id}: {reason}");
        }
        if (type != expectedType)
        {
            throw new HandshakeException(HandshakeFailure.UnexpectedMessage, $"expected handshake message {Name(expectedType)}, got {Name(type)} (replayed, reordered or from another session)");
        }
        if (type == MsgHello && Role == SessionRole.Destination && expectedMigrationId is null) MigrationId = id;
        if (id != MigrationId)
        {
            throw new HandshakeException(HandshakeFailure.WrongMigration, $"message for migration {id}, this session is migration {MigrationId}");
        }
        return r;
    }

    private static string Name(byte type) => type switch
    {
        MsgHello => "hello",
        MsgDestinationQuote => "destination quote",
        MsgSourceQuote => "source quote",
        MsgConfirm => "confirmation",
        MsgRefusal => "refusal",
        _ => $"#{type}",
    };

    private void Accept(Quote quote)
    {
        var policy = new AttestationPolicy
        {
            ExpectedMeasurement = measurement,
            ExpectedNonce = ownNonce!,
            ClockSkew = options.ClockSkew,
            MaxLifetime = options.MaxQuoteLifetime,
            Time = options.Time,
        };
        var verdict = tee.Verify(quote, trust, policy);
        verdict.ThrowIfRefused();
        PeerQuote = quote;
        PeerPlatform = verdict.Platform;
    }

    private void DeriveKeys(byte[] peerPublic, byte[] sourceQuote)
    {
        using var peer = ImportPoint(peerPublic);
        var shared = ephemeral!.DeriveRawSecretAgreement(peer.PublicKey);
        try
        {
            var t = new WireWriter(1024);
            t.Bytes("FERRY-HANDSHAKE-V1"u8);
            t.Blob32(hello);
            t.Blob32(destinationQuoteMessage);
            t.Blob32(sourceQuote);
            TranscriptHash = SHA256.HashData(t.Written);

            var prk = HKDF.Extract(HashAlgorithmName.SHA256, shared, TranscriptHash);
            var s2d = Expand(prk, "source-to-destination key");
            var d2s = Expand(prk, "destination-to-source key");
            sourceFinishedKey = Expand(prk, "source finished");
            destinationFinishedKey = Expand(prk, "destination finished");
            exporterSecret = Expand(prk, "exporter");
            CryptographicOperations.ZeroMemory(prk);
            (sendKey, receiveKey) = Role == SessionRole.Source ? (s2d, d2s) : (d2s, s2d);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            ephemeral.Dispose();
            ephemeral = null;
        }
    }

    private byte[] Expand(byte[] prk, string label) =>
        HKDF.Expand(HashAlgorithmName.SHA256, prk, 32, [.. "FERRY-MIGRATION-V1 "u8, .. Encoding.ASCII.GetBytes(label), .. MigrationId.ToByteArray()]);

    private static byte[] ExportPoint(ECDiffieHellman key)
    {
        var q = key.ExportParameters(false).Q;
        return [0x04, .. q.X!, .. q.Y!];
    }

    private static ECDiffieHellman ImportPoint(byte[] point)
    {
        if (point.Length != 65 || point[0] != 0x04)
        {
            throw new HandshakeException(HandshakeFailure.InvalidKeyShare, $"the peer's ephemeral key is not an uncompressed P-256 point ({point.Length} bytes)");
        }
        var parameters = new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = point[1..33], Y = point[33..] },
        };
        try
        {
            // Importing validates that the point lies on the curve (no invalid-curve attacks).
            return ECDiffieHellman.Create(parameters);
        }
        catch (CryptographicException e)
        {
            throw new HandshakeException(HandshakeFailure.InvalidKeyShare, $"the peer's ephemeral key is not a valid P-256 point: {e.Message}");
        }
    }

    private void Expect(SessionRole role, SessionState state, string step)
    {
        if (Role != role) throw new InvalidOperationException($"{step} is a {role.ToString().ToLowerInvariant()} step; this is the {Role.ToString().ToLowerInvariant()}");
        if (State != state) throw new InvalidOperationException($"{step} needs session state {state}, the session is {State}");
    }

    private void ExpectEstablished()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (State != SessionState.Established) throw new InvalidOperationException($"the session is {State}, not Established: no keys to seal with");
    }

    public void Dispose()
    {
        disposed = true;
        ephemeral?.Dispose();
        foreach (var k in new[] { sendKey, receiveKey, sourceFinishedKey, destinationFinishedKey, exporterSecret })
        {
            if (k is not null) CryptographicOperations.ZeroMemory(k);
        }
    }
}
