using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>
/// What a challenger accepts in a peer's quote: the same measurement as its own, the fresh nonce it sent, and a
/// validity window that contains now (with a clock-skew allowance). Whether the platform is accepted and the
/// evidence is genuine is the backend's part (<see cref="ITeeBackend.Verify"/>), which then applies this.
/// </summary>
public sealed class AttestationPolicy
{
    public required byte[] ExpectedMeasurement { get; init; }
    public required byte[] ExpectedNonce { get; init; }
    /// <summary>How far the two hosts' clocks may disagree; widens the validity window at both ends.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Longest validity window a quote may claim; longer ones are refused even if signed.</summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromMinutes(10);
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The backend-neutral checks (measurement, nonce, time), for a quote whose evidence is already verified.</summary>
    public QuoteVerdict Check(Quote quote, TrustedPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(quote);
        if (!CryptographicOperations.FixedTimeEquals(quote.Measurement, ExpectedMeasurement))
        {
            return QuoteVerdict.Refuse(AttestationFailure.WrongMeasurement,
                $"platform '{platform.Name}' runs measurement {Measurement.Short(quote.Measurement)}…, expected {Measurement.Short(ExpectedMeasurement)}… (another module or launch configuration)");
        }
        if (!CryptographicOperations.FixedTimeEquals(quote.Nonce, ExpectedNonce))
        {
            return QuoteVerdict.Refuse(AttestationFailure.WrongNonce,
                $"quote from platform '{platform.Name}' answers nonce {Measurement.Short(quote.Nonce)}…, not this challenge's {Measurement.Short(ExpectedNonce)}… (replayed or stale)");
        }
        var now = Time.GetUtcNow();
        if (quote.ExpiresAt - quote.IssuedAt > MaxLifetime)
        {
            return QuoteVerdict.Refuse(AttestationFailure.LifetimeTooLong,
                $"quote from platform '{platform.Name}' is valid for {(quote.ExpiresAt - quote.IssuedAt).TotalSeconds:F0} s, more than the {MaxLifetime.TotalSeconds:F0} s allowed");
        }
        if (quote.IssuedAt > now + ClockSkew)
        {
            return QuoteVerdict.Refuse(AttestationFailure.NotYetValid,
                $"quote from platform '{platform.Name}' was issued at {quote.IssuedAt:O}, after now ({now:O}) plus the {ClockSkew.TotalSeconds:F0} s skew allowance");
        }
        if (quote.ExpiresAt < now - ClockSkew)
        {
            return QuoteVerdict.Refuse(AttestationFailure.Expired,
                $"quote from platform '{platform.Name}' expired at {quote.ExpiresAt:O} (now {now:O}, skew allowance {ClockSkew.TotalSeconds:F0} s)");
        }
        return QuoteVerdict.Accept(platform);
    }
}

/// <summary>The outcome of verifying a quote: accepted (with the platform's trust entry) or refused with a reason.</summary>
public sealed class QuoteVerdict
{
    private QuoteVerdict(bool accepted, AttestationFailure? failure, string reason, TrustedPlatform? platform)
    {
        Accepted = accepted;
        Failure = failure;
        Reason = reason;
        Platform = platform;
    }

    public bool Accepted { get; }
    /// <summary>Null when accepted.</summary>
    public AttestationFailure? Failure { get; }
    public string Reason { get; }
    /// <summary>The trust-file entry of the quoting platform, when it was found.</summary>
    public TrustedPlatform? Platform { get; }

    public static QuoteVerdict Accept(TrustedPlatform platform) =>
        new(true, null, $"accepted: platform '{platform.Name}' ({Measurement.Short(platform.PlatformId)}…)", platform);

    public static QuoteVerdict Refuse(AttestationFailure failure, string reason) => new(false, failure, reason, null);

    /// <summary>Throws <see cref="AttestationException"/> with the reason if the quote was refused.</summary>
    public void ThrowIfRefused()
    {
        if (!Accepted) throw new AttestationException(Failure!.Value, Reason);
    }

    public override string ToString() => Accepted ? Reason : $"refused ({AttestationException.Describe(Failure!.Value)}): {Reason}";
}

/// <summary>
/// The hardware seam: what a TEE gives the runtime. The software backend (<see cref="SoftwareTeeBackend"/>)
/// implements it without hardware isolation; an SGX, TDX or SEV-SNP backend would implement the same members
/// with the CPU's report/quote and sealing instructions (docs/confidential.md, "Backends").
/// </summary>
public interface ITeeBackend
{
    TeeKind Kind { get; }

    /// <summary>This platform's identifier, as quotes carry it and trust files list it (32 bytes).</summary>
    byte[] PlatformId { get; }

    /// <summary>A quote that this platform runs <paramref name="measurement"/> holding <paramref name="ephemeralPublicKey"/>, answering <paramref name="nonce"/>.</summary>
    Quote CreateQuote(byte[] measurement, byte[] ephemeralPublicKey, byte[] nonce);

    /// <summary>Checks a peer's evidence against the trust file, then the policy. Never throws for a bad quote: the verdict says why.</summary>
    QuoteVerdict Verify(Quote quote, TrustStore trust, AttestationPolicy policy);

    /// <summary>
    /// Encrypts and authenticates <paramref name="data"/> under this platform's sealing key, bound to
    /// <paramref name="aad"/>. Only this platform can unseal it (SGX sealing keys are CPU-bound the same way).
    /// </summary>
    byte[] SealToPlatform(ReadOnlySpan<byte> data, ReadOnlySpan<byte> aad);

    /// <summary>Reverses <see cref="SealToPlatform"/>; throws <see cref="SealedDataException"/> if the blob was sealed elsewhere, modified, or bound to another <paramref name="aad"/>.</summary>
    byte[] UnsealFromPlatform(ReadOnlySpan<byte> sealedData, ReadOnlySpan<byte> aad);
}
