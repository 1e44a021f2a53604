using System.Buffers.Binary;

namespace Ferry.Enclave.Confidential.Tests;

/// <summary>
/// Numbers that reach the wire, disk or logs are append-only. This pins every one of them: renumbering breaks
/// migration between runtime versions and old checkpoint files, so a change here must be deliberate.
/// </summary>
public class FormatStabilityTests
{
    private static void Pinned<T>(params (T Value, int Number)[] expected) where T : struct, Enum
    {
        foreach (var (value, number) in expected) Assert.Equal(number, Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(expected.Length, Enum.GetValues<T>().Length); // a new member needs a new pin
    }

    [Fact]
    public void Enumerations_keep_their_numbers()
    {
        Pinned((TeeKind.Software, 1), (TeeKind.Sgx, 2), (TeeKind.Tdx, 3), (TeeKind.SevSnp, 4));
        Pinned((SealedRecordKind.Pages, 1), (SealedRecordKind.State, 2), (SealedRecordKind.Control, 3), (SealedRecordKind.Manifest, 4), (SealedRecordKind.End, 5));
        Pinned((SessionRole.Source, 1), (SessionRole.Destination, 2));
        Pinned((CommitMessageKind.Ready, 1), (CommitMessageKind.Commit, 2), (CommitMessageKind.Ack, 3), (CommitMessageKind.Abort, 4));
        Pinned((CheckpointWrapKind.Platform, 1), (CheckpointWrapKind.AgreedKey, 2));
        Pinned((SourcePhase.Running, 1), (SourcePhase.Exporting, 2), (SourcePhase.Committed, 3), (SourcePhase.Aborted, 4));
        Pinned((DestinationPhase.Importing, 1), (DestinationPhase.Ready, 2), (DestinationPhase.Running, 3), (DestinationPhase.Discarded, 4));
        Pinned((AttestationFailure.Malformed, 1), (AttestationFailure.UnsupportedTee, 2), (AttestationFailure.UntrustedPlatform, 3), (AttestationFailure.BadSignature, 4),
            (AttestationFailure.WrongMeasurement, 5), (AttestationFailure.WrongNonce, 6), (AttestationFailure.Expired, 7), (AttestationFailure.NotYetValid, 8), (AttestationFailure.LifetimeTooLong, 9));
        Pinned((SealedDataFailure.Tampered, 1), (SealedDataFailure.Replayed, 2), (SealedDataFailure.OutOfOrder, 3), (SealedDataFailure.Missing, 4), (SealedDataFailure.Truncated, 5),
            (SealedDataFailure.Malformed, 6), (SealedDataFailure.WrongStream, 7), (SealedDataFailure.AfterEnd, 8), (SealedDataFailure.WrongPlatform, 9), (SealedDataFailure.WrongIdentity, 10), (SealedDataFailure.TooLarge, 11));
        Pinned((HandshakeFailure.Malformed, 1), (HandshakeFailure.UnexpectedMessage, 2), (HandshakeFailure.WrongMigration, 3), (HandshakeFailure.InvalidKeyShare, 4),
            (HandshakeFailure.KeyConfirmationFailed, 5), (HandshakeFailure.PeerRefused, 6));
        Pinned((CommitFailure.StaleEpoch, 1), (CommitFailure.WrongEpoch, 2), (CommitFailure.InvalidTransition, 3), (CommitFailure.Malformed, 4));
    }

    [Fact]
    public void The_record_header_has_its_documented_layout()
    {
        using var fleet = new Fleet("s", "d");
        var (s, _) = fleet.Handshake("s", "d");
        using var sealer = s.CreateSealer(0x01020304);
        sealer.Seal(SealedRecordKind.Pages, 0, 0, []);
        var r = sealer.Seal(SealedRecordKind.State, round: 0x0A0B0C0D, item: 0x1122334455667788, payload: new byte[5]);
        Assert.Equal(32, SealedRecord.HeaderSize);
        Assert.Equal(32 + 5 + 16, r.Length);
        Assert.Equal(1, r[0]);
        Assert.Equal((byte)SealedRecordKind.State, r[1]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(2)));
        Assert.Equal(0x01020304u, BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(4)));
        Assert.Equal(1ul, BinaryPrimitives.ReadUInt64LittleEndian(r.AsSpan(8)));
        Assert.Equal(0x0A0B0C0Du, BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(16)));
        Assert.Equal(0x1122334455667788ul, BinaryPrimitives.ReadUInt64LittleEndian(r.AsSpan(20)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(28)));
    }

    [Fact]
    public void Commit_messages_and_identities_have_their_documented_layout()
    {
        var m = new CommitMessage(CommitMessageKind.Commit, 0x0102030405060708).Encode();
        Assert.Equal([.. "FCMT"u8, 2, 8, 7, 6, 5, 4, 3, 2, 1], m);
        var id = new WorkloadIdentity(Fleet.WorkloadMeasurement, new Guid("00112233-4455-6677-8899-aabbccddeeff"));
        Assert.Equal([.. Fleet.WorkloadMeasurement, .. new Guid("00112233-4455-6677-8899-aabbccddeeff").ToByteArray()], id.Encode());
        Assert.Equal(System.Security.Cryptography.SHA256.HashData([.. "FERRY-EPOCH-IDENTITY-V1"u8, .. id.Encode()]), id.Key);
    }
}
