namespace Ferry.Enclave.Confidential;

/// <summary>
/// Base of every refusal the confidential-computing library reports. Catching it catches every reason a
/// confidential migration, checkpoint or attestation was refused; the derived types say which part refused.
/// </summary>
public abstract class ConfidentialException : Exception
{
    protected ConfidentialException(string message) : base(message) { }
    protected ConfidentialException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Why a quote was refused. Persisted in logs and sent in refusals: append only, never renumber.</summary>
public enum AttestationFailure
{
    Malformed = 1,
    UnsupportedTee = 2,
    UntrustedPlatform = 3,
    BadSignature = 4,
    WrongMeasurement = 5,
    WrongNonce = 6,
    Expired = 7,
    NotYetValid = 8,
    LifetimeTooLong = 9,
}

/// <summary>A peer's quote did not satisfy the attestation policy (or could not be parsed).</summary>
public sealed class AttestationException : ConfidentialException
{
    public AttestationException(AttestationFailure reason, string message)
        : base($"attestation refused ({Describe(reason)}): {message}") => Reason = reason;

    public AttestationFailure Reason { get; }

    internal static string Describe(AttestationFailure reason) => reason switch
    {
        AttestationFailure.Malformed => "malformed quote",
        AttestationFailure.UnsupportedTee => "unsupported TEE",
        AttestationFailure.UntrustedPlatform => "untrusted platform",
        AttestationFailure.BadSignature => "bad signature",
        AttestationFailure.WrongMeasurement => "different measurement",
        AttestationFailure.WrongNonce => "stale or foreign nonce",
        AttestationFailure.Expired => "expired",
        AttestationFailure.NotYetValid => "not yet valid",
        AttestationFailure.LifetimeTooLong => "lifetime too long",
        _ => reason.ToString(),
    };
}

/// <summary>The fleet trust file is missing, unreadable, or not valid.</summary>
public sealed class TrustStoreException : ConfidentialException
{
    public TrustStoreException(string message) : base(message) { }
    public TrustStoreException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The host's platform (attestation) key cannot be created, read or used.</summary>
public sealed class PlatformKeyException : ConfidentialException
{
    public PlatformKeyException(string message) : base(message) { }
    public PlatformKeyException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>What was wrong with sealed data. Sent in refusals and logged: append only, never renumber.</summary>
public enum SealedDataFailure
{
    /// <summary>Authentication failed: the bytes, or the context they claim (stream, sequence, round, kind), were modified.</summary>
    Tampered = 1,
    /// <summary>A record whose sequence number was already accepted on this stream arrived again.</summary>
    Replayed = 2,
    /// <summary>A record arrived ahead of its turn: the ones before it were dropped or reordered.</summary>
    OutOfOrder = 3,
    /// <summary>A stream, or records of it, that the sender accounted for never arrived.</summary>
    Missing = 4,
    /// <summary>Data ended before its authenticated end: a stream without its end record, a file without its final chunk.</summary>
    Truncated = 5,
    /// <summary>The bytes are not in the expected format (bad magic, version, field or length).</summary>
    Malformed = 6,
    /// <summary>A record of one stream was delivered on another.</summary>
    WrongStream = 7,
    /// <summary>A record arrived after the stream's end record.</summary>
    AfterEnd = 8,
    /// <summary>The data was sealed by another platform (host) and cannot be opened here.</summary>
    WrongPlatform = 9,
    /// <summary>The data belongs to another workload identity (measurement or instance).</summary>
    WrongIdentity = 10,
    /// <summary>A length field exceeds the format's bound.</summary>
    TooLarge = 11,
}

/// <summary>Sealed data (a migration record, a platform-sealed blob, a sealed checkpoint) was refused.</summary>
public sealed class SealedDataException : ConfidentialException
{
    public SealedDataException(SealedDataFailure failure, string message)
        : base($"sealed data refused ({Describe(failure)}): {message}") => Failure = failure;

    public SealedDataFailure Failure { get; }

    internal static string Describe(SealedDataFailure failure) => failure switch
    {
        SealedDataFailure.Tampered => "tampered",
        SealedDataFailure.Replayed => "replayed",
        SealedDataFailure.OutOfOrder => "out of order",
        SealedDataFailure.Missing => "missing",
        SealedDataFailure.Truncated => "truncated",
        SealedDataFailure.Malformed => "malformed",
        SealedDataFailure.WrongStream => "wrong stream",
        SealedDataFailure.AfterEnd => "after end of stream",
        SealedDataFailure.WrongPlatform => "sealed by another platform",
        SealedDataFailure.WrongIdentity => "another workload",
        SealedDataFailure.TooLarge => "too large",
        _ => failure.ToString(),
    };
}

/// <summary>Why a handshake failed (other than a refused quote). Append only, never renumber.</summary>
public enum HandshakeFailure
{
    Malformed = 1,
    UnexpectedMessage = 2,
    WrongMigration = 3,
    InvalidKeyShare = 4,
    KeyConfirmationFailed = 5,
    PeerRefused = 6,
}

/// <summary>The mutual-attestation handshake failed for a reason other than the peer's quote.</summary>
public sealed class HandshakeException : ConfidentialException
{
    public HandshakeException(HandshakeFailure reason, string message)
        : base($"handshake failed ({reason}): {message}") => Reason = reason;

    public HandshakeFailure Reason { get; }
}

/// <summary>The epoch store cannot be read or written, or a stored epoch failed to unseal.</summary>
public sealed class EpochStoreException : ConfidentialException
{
    public EpochStoreException(string message) : base(message) { }
    public EpochStoreException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Why the commit protocol refused a step. Append only, never renumber.</summary>
public enum CommitFailure
{
    /// <summary>The state's epoch is not newer than the last one this host accepted for the workload (rollback or fork).</summary>
    StaleEpoch = 1,
    /// <summary>A message does not belong to this migration's epoch.</summary>
    WrongEpoch = 2,
    /// <summary>A step was asked for in a phase that does not allow it (e.g. aborting after the commit was sent).</summary>
    InvalidTransition = 3,
    /// <summary>The commit message could not be parsed.</summary>
    Malformed = 4,
}

/// <summary>The fork/rollback rules of the commit protocol refused a step.</summary>
public sealed class CommitProtocolException : ConfidentialException
{
    public CommitProtocolException(CommitFailure reason, string message)
        : base($"commit protocol refused ({reason}): {message}") => Reason = reason;

    public CommitFailure Reason { get; }
}
