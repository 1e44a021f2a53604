using System.Buffers;
using System.Buffers.Binary;
using Ferry.Enclave.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Enclave.Migration;

/// <summary>
/// The source enclave's half of a migration: the only code that reads the guest's memory and state. It hands the
/// untrusted migration driver nothing but protected records (see <see cref="IRecordProtector"/>).
/// Batches may be sealed concurrently for different streams; each stream has its own sequence numbers.
/// </summary>
public sealed class EnclaveSource
{
    private readonly GuestProgram program;
    private readonly IRecordProtector protector;
    private readonly long[] sequences;
    private FrozenGuest? frozen;

    public EnclaveSource(GuestProgram program, IRecordProtector protector, int streams)
    {
        this.program = program;
        this.protector = protector;
        sequences = new long[streams];
    }

    public GuestProgram Program => program;

    /// <summary>Confidential workloads: the encoded workload identity sealed into the state with the epoch (empty otherwise).</summary>
    public byte[] Identity { get; init; } = [];

    public ulong MemoryBytes => program.Instance.Memory?.Size ?? 0;

    public long PageCount => (long)(MemoryBytes / MigrationRecords.PageSize);

    /// <summary>Batches sealed so far on each stream.</summary>
    public long[] BatchesSent
    {
        get
        {
            lock (sequences) return (long[])sequences.Clone();
        }
    }

    /// <summary>Every page whose contents are not all zero (the first pre-copy round, or stop-and-copy).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // runs once over all memory: no unoptimised first pass
    public unsafe void NonZeroPages(List<long> pages)
    {
        var memory = program.Instance.Memory;
        if (memory is null) return;
        var count = (long)(memory.Size / MigrationRecords.PageSize);
        for (long p = 0; p < count; p++)
        {
            if (!IsZero(memory.Base + p * MigrationRecords.PageSize)) pages.Add(p);
        }
    }

    private static unsafe bool IsZero(byte* page) => new ReadOnlySpan<byte>(page, MigrationRecords.PageSize).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>Upper bound on the protected size of a batch of <paramref name="pages"/> pages.</summary>
    public int MaxRecordBytes(int pages) => MigrationRecords.BatchPlaintextBytes(pages, 0) + protector.Overhead;

    /// <summary>
    /// Reads, encodes and protects a batch of pages for <paramref name="stream"/> into <paramref name="output"/>
    /// (at least <see cref="MaxRecordBytes"/> of the batch); returns the record length. The pages are copied from
    /// memory straight into the record and protected there: one pass over them, no intermediate buffer.
    /// </summary>
    public unsafe int SealBatch(ReadOnlySpan<long> pages, int round, int stream, Span<byte> output)
    {
        var memory = program.Instance.Memory!;
        var size = memory.Size;
        var dataPages = ArrayPool<long>.Shared.Rent(Math.Max(1, pages.Length));
        var zeroPages = ArrayPool<long>.Shared.Rent(Math.Max(1, pages.Length));
        try
        {
            // Pages that are all zero now travel as indices only.
            int data = 0, zeros = 0;
            foreach (var p in pages)
            {
                var at = (ulong)p * MigrationRecords.PageSize;
                if (at >= size || IsZero(memory.Base + at)) zeroPages[zeros++] = p;
                else dataPages[data++] = p;
            }
            var length = MigrationRecords.BatchPlaintextBytes(data, zeros);
            var record = output[..(length + protector.Overhead)];
            var span = record.Slice(protector.HeaderSize, length);
            BinaryPrimitives.WriteInt32LittleEndian(span, round);
            BinaryPrimitives.WriteInt32LittleEndian(span[4..], data);
            BinaryPrimitives.WriteInt32LittleEndian(span[8..], zeros);
            BinaryPrimitives.WriteUInt64LittleEndian(span[12..], size);
            var at8 = MigrationRecords.BatchHeaderBytes;
            for (var i = 0; i < data; i++, at8 += 8) BinaryPrimitives.WriteInt64LittleEndian(span[at8..], dataPages[i]);
            for (var i = 0; i < zeros; i++, at8 += 8) BinaryPrimitives.WriteInt64LittleEndian(span[at8..], zeroPages[i]);
            for (var i = 0; i < data; i++)
            {
                new ReadOnlySpan<byte>(memory.Base + (ulong)dataPages[i] * MigrationRecords.PageSize, MigrationRecords.PageSize)
                    .CopyTo(span[(at8 + i * MigrationRecords.PageSize)..]);
            }
            long seq;
            lock (sequences) seq = sequences[stream]++;
            protector.ProtectInPlace(new RecordContext(MigrationRecordKind.PageBatch, stream, seq), record);
            return record.Length;
        }
        finally
        {
            ArrayPool<long>.Shared.Return(dataPages);
            ArrayPool<long>.Shared.Return(zeroPages);
        }
    }

    /// <summary>Stops the guest at its next safe point (it stays frozen until <see cref="Unfreeze"/> or <see cref="Retire"/>).</summary>
    public async Task<FrozenGuest> FreezeAsync()
    {
        frozen = await program.FreezeAsync().ConfigureAwait(false);
        return frozen;
    }

    /// <summary>The final state record (frames, globals, tables, environment), protected for the control stream.</summary>
    public byte[] SealState(int finalRound, byte[]? pendingPages, ulong epoch)
    {
        var f = frozen ?? throw new InvalidOperationException("freeze the guest first");
        var instance = program.Instance;
        var record = new MigrationRecords.StateRecord
        {
            FrozenAtUnixNanos = f.FrozenAtUnixNanos,
            FinalRound = finalRound,
            BatchesPerStream = BatchesSent,
            ModuleSha256 = ModuleIdentity.Sha256(instance.Module),
            Globals = [],
            Tables = [],
            DroppedData = [],
            DroppedElements = [],
            Frames = [.. f.Frames],
            MemoryBytes = MemoryBytes,
            PendingPages = pendingPages,
            Environment = program.Environment.CaptureState(),
            Epoch = epoch,
            Identity = Identity,
        };
        return ProtectControl(MigrationRecordKind.State, MigrationRecords.EncodeState(record, instance));
    }

    /// <summary>
    /// The identity and <paramref name="epoch"/> the state will carry, protected for the control stream and sent before
    /// the freeze (confidential workloads: the destination prepares its epoch record meanwhile).
    /// </summary>
    public byte[] SealEpochIntent(ulong epoch)
    {
        // The kind leads the body, as in the destination's replies: a sealed control record says what it is.
        var body = new byte[1 + Identity.Length + 8];
        body[0] = (byte)MigrationRecordKind.EpochIntent;
        Identity.CopyTo(body, 1);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(1 + Identity.Length), epoch);
        return ProtectControl(MigrationRecordKind.EpochIntent, body);
    }

    /// <summary>
    /// The commit decision as a protected record for the control stream (carries the epoch): under a sealed protector
    /// only this enclave can produce it, so nothing on the path can make the destination start the guest.
    /// </summary>
    public byte[] SealCommit(ulong epoch)
    {
        Span<byte> body = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(body, epoch);
        return ProtectControl(MigrationRecordKind.Commit, body);
    }

    /// <summary>Frames beyond this many (innermost first) are left out of a frame hint.</summary>
    public const int MaxHintedFrames = 64;

    /// <summary>
    /// The frozen call stack's shape — function index and safe point of each frame, innermost first, no values — as a
    /// protected control record. Sent right after the freeze, it lets the destination compile the code that resumes
    /// these frames (tens of milliseconds for a large function) while the last pages and the state are on the way.
    /// </summary>
    public byte[] SealFrameHint()
    {
        var f = frozen ?? throw new InvalidOperationException("freeze the guest first");
        var count = Math.Min(f.Frames.Count, MaxHintedFrames);
        var body = new byte[1 + 4 + (count * 8)];
        body[0] = (byte)MigrationRecordKind.FrameHint;
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(1), count);
        for (var i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(5 + (i * 8)), f.Frames[i].FunctionIndex);
            BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(9 + (i * 8)), f.Frames[i].SafePoint);
        }
        return ProtectControl(MigrationRecordKind.FrameHint, body);
    }

    /// <summary>Protects a record for the control stream (stream 0) under its next sequence number.</summary>
    private byte[] ProtectControl(MigrationRecordKind kind, ReadOnlySpan<byte> body)
    {
        var output = new byte[body.Length + protector.Overhead];
        long seq;
        lock (sequences) seq = sequences[0]++;
        var n = protector.Protect(new RecordContext(kind, 0, seq), body, output);
        return output[..n];
    }

    /// <summary>
    /// Checks the destination's Ready reply: the destination enclave holds the complete, verified state of
    /// <paramref name="epoch"/>. Under a sealed protector only that enclave can produce it, so no one on the path can
    /// make this source commit (and stop the guest for good) before the state is really there.
    /// </summary>
    public void OpenReady(ReadOnlySpan<byte> record, ulong epoch) => OpenReply(record, MigrationRecordKind.Ready, epoch, 9);

    /// <summary>Checks the destination's Resumed reply; returns when the guest started there (Unix nanoseconds).</summary>
    public long OpenResumed(ReadOnlySpan<byte> record, ulong epoch)
    {
        Span<byte> body = stackalloc byte[ReplyBodyMax];
        OpenReply(record, MigrationRecordKind.Resumed, epoch, 17, body);
        return BinaryPrimitives.ReadInt64LittleEndian(body[9..]);
    }

    /// <summary>
    /// Checks the destination's proof that it discarded the state of <paramref name="epoch"/> before accepting any
    /// commit (so it will never run it); throws <see cref="MigrationIntegrityException"/> if it is not authentic.
    /// </summary>
    public void OpenDiscarded(ReadOnlySpan<byte> record, ulong epoch) => OpenReply(record, MigrationRecordKind.Discarded, epoch, 9);

    private const int ReplyBodyMax = 64;
    private long repliesOpened;

    private void OpenReply(ReadOnlySpan<byte> record, MigrationRecordKind kind, ulong epoch, int length) =>
        OpenReply(record, kind, epoch, length, stackalloc byte[ReplyBodyMax]);

    private void OpenReply(ReadOnlySpan<byte> record, MigrationRecordKind kind, ulong epoch, int length, Span<byte> body)
    {
        if (record.Length > ReplyBodyMax + protector.Overhead) throw new MigrationIntegrityException($"a {kind} reply of {record.Length} bytes");
        var n = protector.OpenReply(new RecordContext(kind, 0, repliesOpened), record, body);
        repliesOpened++;
        // Body: u8 kind ‖ u64 epoch [‖ i64 resumed-at]; the kind inside the authenticated body keeps Ready and Resumed apart.
        if (n != length || body[0] != (byte)kind || BinaryPrimitives.ReadUInt64LittleEndian(body[1..]) != epoch)
        {
            throw new MigrationIntegrityException($"the destination's {kind} reply does not match this migration (epoch {epoch})");
        }
    }

    /// <summary>The migration failed before commit: the guest continues here as if nothing happened.</summary>
    public void Unfreeze()
    {
        if (frozen is null) return;
        frozen = null;
        program.Unfreeze();
    }

    /// <summary>The migration committed: the guest never runs here again.</summary>
    public void Retire()
    {
        frozen = null;
        program.Retire();
    }
}
