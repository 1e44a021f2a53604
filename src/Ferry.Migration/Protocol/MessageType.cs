namespace Ferry.Migration.Protocol;

/// <summary>Migration protocol messages. Persisted on the wire: explicit, append-only values.</summary>
public enum MessageType : ushort
{
    /// <summary>First frame of every stream: migration id and stream index.</summary>
    Hello = 1,
    /// <summary>Source → destination: the workload to expect (JSON <see cref="WorkloadSetup"/>).</summary>
    Setup = 2,
    /// <summary>Source → destination: a chunk of the module's bytes.</summary>
    ModuleChunk = 3,
    /// <summary>Destination → source: ready to receive pages (or an error).</summary>
    SetupAck = 4,
    /// <summary>A protected page batch.</summary>
    PageBatch = 5,
    /// <summary>Source → destination: the protected final state.</summary>
    State = 7,
    /// <summary>Destination → source: everything checked; waiting for commit.</summary>
    Ready = 8,
    /// <summary>Source → destination: the source will never run the guest again; start it.</summary>
    Commit = 9,
    /// <summary>Destination → source: the guest runs here (with the time of its first instruction).</summary>
    Resumed = 10,
    /// <summary>Either side: the migration is abandoned (with a reason).</summary>
    Abort = 11,
    /// <summary>Destination → source (post-copy): pages the guest is waiting for.</summary>
    PageRequest = 12,
    /// <summary>Source → destination (post-copy): every pending page has been sent (with per-stream counts).</summary>
    PostCopyDone = 13,
    /// <summary>Attestation handshake messages (confidential workloads).</summary>
    Handshake = 14,
    /// <summary>Destination → source (post-copy): every page arrived; the source may go.</summary>
    Complete = 15,
    /// <summary>
    /// Source → destination (pre-copy): a round's batches are all written (round, then the cumulative per-stream
    /// batch counts). Unauthenticated: it only asks for <see cref="RoundApplied"/>.
    /// </summary>
    RoundSent = 16,
    /// <summary>
    /// Destination → source (pre-copy): every batch up to that round is applied. The source freezes the guest only
    /// after this, so pages still in flight between the hosts never count as downtime. Unauthenticated: a lie only
    /// changes timing (an early ack lengthens the downtime; none at all times the migration out, and it aborts).
    /// </summary>
    RoundApplied = 17,
    /// <summary>
    /// Source → destination (confidential workloads, before any page): the protected identity and epoch the state will
    /// carry, so the destination writes its epoch record while the pages travel rather than inside the downtime.
    /// </summary>
    EpochIntent = 18,
    /// <summary>
    /// Source → destination, right after the freeze: the protected shape of the frozen call stack, so the destination
    /// compiles the resume code (if its warm-up has not) while the last pages and the state travel (see MigrationRecordKind.FrameHint).
    /// </summary>
    FrameHint = 19,
}
