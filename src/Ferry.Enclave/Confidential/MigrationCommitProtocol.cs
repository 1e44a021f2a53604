using System.Buffers.Binary;

namespace Ferry.Enclave.Confidential;

/// <summary>Source phases of one migration attempt. Logged: append only.</summary>
public enum SourcePhase : byte
{
    /// <summary>The guest runs; no export has started.</summary>
    Running = 1,
    /// <summary>State is being sent; the guest may still run (pre-copy) or be frozen (stop-and-copy). The source can still abort.</summary>
    Exporting = 2,
    /// <summary>The commit was decided and sent: the source never runs the guest again, whatever happens next.</summary>
    Committed = 3,
    /// <summary>The attempt was abandoned before the commit: the source resumes the guest; the destination must discard.</summary>
    Aborted = 4,
}

/// <summary>Destination phases of one migration attempt. Logged: append only.</summary>
public enum DestinationPhase : byte
{
    /// <summary>Receiving state; the guest must not run.</summary>
    Importing = 1,
    /// <summary>Everything received and verified, epoch newer than this host's last; waiting for the commit. The guest must not run.</summary>
    Ready = 2,
    /// <summary>The commit arrived and the epoch was recorded: the guest runs here now.</summary>
    Running = 3,
    /// <summary>The attempt was aborted or refused; the imported state is thrown away.</summary>
    Discarded = 4,
}

/// <summary>Commit-protocol messages. Sealed as <see cref="SealedRecordKind.Control"/> records: append only.</summary>
public enum CommitMessageKind : byte
{
    /// <summary>Destination → source: I hold the complete, verified state of this epoch.</summary>
    Ready = 1,
    /// <summary>Source → destination: run it; I will never run it again.</summary>
    Commit = 2,
    /// <summary>Destination → source: running (informational; the source is already retired).</summary>
    Ack = 3,
    /// <summary>Source → destination: discard it; I resumed.</summary>
    Abort = 4,
}

/// <summary>
/// One commit-protocol message: kind and the migration epoch it is about. Its authenticity and freshness come from
/// the sealed control record that carries it (migration id, direction and sequence in the AAD), not from this encoding.
/// </summary>
public readonly record struct CommitMessage(CommitMessageKind Kind, ulong Epoch)
{
    public const int EncodedSize = 13;
    private static ReadOnlySpan<byte> Magic => "FCMT"u8;

    public byte[] Encode()
    {
        var b = new byte[EncodedSize];
        Magic.CopyTo(b);
        b[4] = (byte)Kind;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(5), Epoch);
        return b;
    }

    public static CommitMessage Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != EncodedSize || !bytes[..4].SequenceEqual(Magic)) throw new CommitProtocolException(CommitFailure.Malformed, $"not a commit message ({bytes.Length} bytes)");
        var kind = (CommitMessageKind)bytes[4];
        if (kind is < CommitMessageKind.Ready or > CommitMessageKind.Abort) throw new CommitProtocolException(CommitFailure.Malformed, $"unknown commit message kind {bytes[4]}");
        return new CommitMessage(kind, BinaryPrimitives.ReadUInt64LittleEndian(bytes[5..]));
    }
}

/// <summary>
/// The source's side of the commit protocol (one instance per migration attempt). The single decision point is
/// <see cref="OnReady"/>: it moves to <see cref="SourcePhase.Committed"/> before it returns the commit message, and
/// nothing leaves Committed. Until then <see cref="TryAbort"/> wins and the source resumes. Because only the source
/// decides, and decides once, the two runtimes can never both run (docs/confidential.md, "Commit protocol").
/// </summary>
public sealed class SourceCommitProtocol
{
    /// <param name="identity">The workload being migrated.</param>
    /// <param name="epoch">The epoch the source runs under (1 at launch, then whatever it was accepted with).</param>
    public SourceCommitProtocol(WorkloadIdentity identity, ulong epoch)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (epoch == ulong.MaxValue) throw new ArgumentOutOfRangeException(nameof(epoch), "epoch space exhausted");
        Identity = identity;
        Epoch = epoch;
    }

    private SourceCommitProtocol(SourceCommitProtocol other)
    {
        Identity = other.Identity;
        Epoch = other.Epoch;
        Phase = other.Phase;
        Acknowledged = other.Acknowledged;
    }

    public WorkloadIdentity Identity { get; }
    /// <summary>The epoch the source runs under.</summary>
    public ulong Epoch { get; }
    /// <summary>The epoch sealed into the exported state: always <see cref="Epoch"/> + 1.</summary>
    public ulong ExportEpoch => Epoch + 1;
    public SourcePhase Phase { get; private set; } = SourcePhase.Running;
    /// <summary>
    /// Whether the source may execute the guest: while Running, Exporting (pre-copy runs the guest while pages are
    /// sent; the final round freezes it) and after an abort. False from the moment the commit is decided, forever.
    /// </summary>
    public bool GuestMayRun => Phase != SourcePhase.Committed;
    /// <summary>The destination confirmed it runs (informational: the source retires at commit regardless).</summary>
    public bool Acknowledged { get; private set; }

    /// <summary>Running → Exporting. Returns the epoch to seal into the exported state (with <see cref="Identity"/>).</summary>
    public ulong BeginExport()
    {
        if (Phase != SourcePhase.Running) throw Invalid($"cannot begin an export in phase {Phase}");
        Phase = SourcePhase.Exporting;
        return ExportEpoch;
    }

    /// <summary>
    /// The destination reports Ready. Exporting → Committed, returning the commit message to send: from this call on
    /// the source must never run the guest again (stop it, wipe its memory). A repeated Ready (our commit was lost)
    /// gets the commit again; a Ready after an abort gets the abort again.
    /// </summary>
    public CommitMessage OnReady(CommitMessage ready)
    {
        if (ready.Kind != CommitMessageKind.Ready) throw Invalid($"expected a Ready message, got {ready.Kind}");
        if (ready.Epoch != ExportEpoch) throw new CommitProtocolException(CommitFailure.WrongEpoch, $"Ready for epoch {ready.Epoch}, this export is epoch {ExportEpoch}");
        switch (Phase)
        {
            case SourcePhase.Exporting:
                Phase = SourcePhase.Committed;
                return new CommitMessage(CommitMessageKind.Commit, ExportEpoch);
            case SourcePhase.Committed:
                return new CommitMessage(CommitMessageKind.Commit, ExportEpoch);
            case SourcePhase.Aborted:
                return new CommitMessage(CommitMessageKind.Abort, ExportEpoch);
            default:
                throw Invalid($"a Ready message in phase {Phase}: no export is in progress");
        }
    }

    /// <summary>
    /// Gives up the attempt (timeout, refused data, lost connection) if the commit was not yet decided: Exporting →
    /// Aborted, <paramref name="abort"/> is the message to send, and the guest may resume. Returns false — and the
    /// guest must stay stopped — if the source already committed. Idempotent once aborted.
    /// </summary>
    public bool TryAbort(out CommitMessage abort)
    {
        abort = new CommitMessage(CommitMessageKind.Abort, ExportEpoch);
        switch (Phase)
        {
            case SourcePhase.Exporting:
                Phase = SourcePhase.Aborted;
                return true;
            case SourcePhase.Aborted:
                return true;
            case SourcePhase.Committed:
                return false;
            default:
                Phase = SourcePhase.Aborted;
                return true;
        }
    }

    /// <summary>What to send again while waiting: the commit (until acknowledged) or the abort; null otherwise.</summary>
    public CommitMessage? Retransmit() => Phase switch
    {
        SourcePhase.Committed when !Acknowledged => new CommitMessage(CommitMessageKind.Commit, ExportEpoch),
        SourcePhase.Aborted => new CommitMessage(CommitMessageKind.Abort, ExportEpoch),
        _ => null,
    };

    public void OnAck(CommitMessage ack)
    {
        if (ack.Kind != CommitMessageKind.Ack) throw Invalid($"expected an Ack message, got {ack.Kind}");
        if (ack.Epoch != ExportEpoch) throw new CommitProtocolException(CommitFailure.WrongEpoch, $"Ack for epoch {ack.Epoch}, this export is epoch {ExportEpoch}");
        if (Phase != SourcePhase.Committed) throw Invalid($"an Ack in phase {Phase}: the destination cannot run without a commit");
        Acknowledged = true;
    }

    /// <summary>An independent copy (for exploring interleavings in tests).</summary>
    public SourceCommitProtocol Clone() => new(this);

    private static CommitProtocolException Invalid(string message) => new(CommitFailure.InvalidTransition, message);
}

/// <summary>
/// The destination's side of the commit protocol (one instance per migration attempt). The guest runs only after a
/// commit for exactly the epoch it verified, and only after the epoch store accepted that epoch (anti-rollback):
/// Importing → Ready (<see cref="StateComplete"/>) → Running (<see cref="OnCommit"/>); an abort discards.
/// </summary>
public sealed class DestinationCommitProtocol
{
    public DestinationCommitProtocol(WorkloadIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        Identity = identity;
    }

    private DestinationCommitProtocol(DestinationCommitProtocol other)
    {
        Identity = other.Identity;
        Epoch = other.Epoch;
        Phase = other.Phase;
    }

    public WorkloadIdentity Identity { get; }
    /// <summary>The epoch of the imported state, once complete (0 before).</summary>
    public ulong Epoch { get; private set; }
    public DestinationPhase Phase { get; private set; } = DestinationPhase.Importing;
    public bool GuestMayRun => Phase == DestinationPhase.Running;

    /// <summary>
    /// All state arrived and verified (manifest included), sealed with <paramref name="epoch"/>: Importing → Ready,
    /// returning the Ready message. Refuses (→ Discarded) state whose epoch is not newer than the last this host
    /// accepted for the identity: a rollback to an older state, or a second copy.
    /// </summary>
    public CommitMessage StateComplete(ulong epoch, IEpochStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        switch (Phase)
        {
            case DestinationPhase.Importing:
                var last = store.LastAccepted(Identity);
                if (last.HasValue && epoch <= last.Value)
                {
                    Phase = DestinationPhase.Discarded;
                    throw new CommitProtocolException(CommitFailure.StaleEpoch,
                        $"workload {Identity} arrives with epoch {epoch}, but this host already accepted epoch {last.Value}: an older state (rollback) or a second copy (fork)");
                }
                Epoch = epoch;
                Phase = DestinationPhase.Ready;
                return new CommitMessage(CommitMessageKind.Ready, epoch);
            case DestinationPhase.Ready when epoch == Epoch:
                return new CommitMessage(CommitMessageKind.Ready, epoch);
            default:
                throw Invalid($"state completion (epoch {epoch}) in phase {Phase}");
        }
    }

    /// <summary>
    /// The source's commit: records the epoch in <paramref name="store"/> (refusing it if no longer newer), then
    /// Ready → Running; returns the Ack to send. A repeated commit while Running gets the Ack again.
    /// </summary>
    public CommitMessage OnCommit(CommitMessage commit, IEpochStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (commit.Kind != CommitMessageKind.Commit) throw Invalid($"expected a Commit message, got {commit.Kind}");
        if (Phase is DestinationPhase.Ready or DestinationPhase.Running && commit.Epoch != Epoch)
        {
            throw new CommitProtocolException(CommitFailure.WrongEpoch, $"Commit for epoch {commit.Epoch}, the imported state is epoch {Epoch}");
        }
        switch (Phase)
        {
            case DestinationPhase.Ready:
                if (!store.TryAccept(Identity, Epoch))
                {
                    Phase = DestinationPhase.Discarded;
                    throw new CommitProtocolException(CommitFailure.StaleEpoch,
                        $"workload {Identity}: epoch {Epoch} is no longer newer than this host's last accepted epoch; refusing to run a second copy");
                }
                Phase = DestinationPhase.Running;
                return new CommitMessage(CommitMessageKind.Ack, Epoch);
            case DestinationPhase.Running:
                return new CommitMessage(CommitMessageKind.Ack, Epoch);
            default:
                throw Invalid($"a Commit in phase {Phase}: the destination has not reported Ready for this attempt");
        }
    }

    /// <summary>The source aborted: Importing/Ready → Discarded. Refused while Running (an honest source never aborts after committing).</summary>
    public void OnAbort(CommitMessage abort)
    {
        if (abort.Kind != CommitMessageKind.Abort) throw Invalid($"expected an Abort message, got {abort.Kind}");
        switch (Phase)
        {
            case DestinationPhase.Importing:
            case DestinationPhase.Ready:
                Phase = DestinationPhase.Discarded;
                break;
            case DestinationPhase.Discarded:
                break;
            default:
                throw Invalid("an Abort after the commit: the destination keeps running (the source cannot resume once it committed)");
        }
    }

    /// <summary>Local failure before the commit (refused data, lost connection): Importing/Ready → Discarded. No effect once Running.</summary>
    public void Discard()
    {
        if (Phase != DestinationPhase.Running) Phase = DestinationPhase.Discarded;
    }

    /// <summary>What to send again while waiting: Ready while Ready; null otherwise.</summary>
    public CommitMessage? Retransmit() => Phase == DestinationPhase.Ready ? new CommitMessage(CommitMessageKind.Ready, Epoch) : null;

    /// <summary>An independent copy (for exploring interleavings in tests).</summary>
    public DestinationCommitProtocol Clone() => new(this);

    private static CommitProtocolException Invalid(string message) => new(CommitFailure.InvalidTransition, message);
}

/// <summary>Entry points to the two sides of the commit protocol (docs/confidential.md, "Commit protocol").</summary>
public static class MigrationCommitProtocol
{
    /// <summary>The source side of one migration attempt of <paramref name="identity"/>, running under <paramref name="epoch"/>.</summary>
    public static SourceCommitProtocol ForSource(WorkloadIdentity identity, ulong epoch) => new(identity, epoch);

    /// <summary>The destination side of one migration attempt of <paramref name="identity"/>.</summary>
    public static DestinationCommitProtocol ForDestination(WorkloadIdentity identity) => new(identity);
}
