using System.Buffers;
using System.Buffers.Binary;
using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Enclave.Migration;

/// <summary>What the destination learned from the final state record.</summary>
public sealed record ArrivedState(long FrozenAtUnixNanos, int FinalRound, ulong MemoryBytes, ulong Epoch, int Frames, bool PostCopy);

/// <summary>
/// Admission of arriving state, decided inside the destination's trusted runtime (confidential workloads: the
/// anti-rollback epoch check against the host's epoch store).
/// </summary>
public interface IStateAdmission
{
    /// <summary>Checks the authenticated state before the destination reports Ready; throws to refuse it.</summary>
    void Admit(MigrationRecords.StateRecord state);

    /// <summary>At the commit, before the guest starts: records the admission; throws if it can no longer be accepted.</summary>
    void Commit();

    /// <summary>
    /// Before any page: the source announced (authenticated) the identity and epoch its state will carry, so work that
    /// <see cref="Admit"/> would do inside the downtime can start now. Only a hint: <see cref="Admit"/> still decides,
    /// and must not rely on it. Never throws.
    /// </summary>
    void Anticipate(ReadOnlySpan<byte> identity, ulong epoch)
    {
    }
}

/// <summary>
/// The destination enclave's half of a migration: checks and applies protected page batches and the final
/// state, then builds the guest and starts it. Batches from different streams may arrive interleaved and
/// out of order across streams; within a stream the sequence numbers must be consecutive, and a page is only
/// overwritten by a batch of the same or a later round, so an older copy can never replace a newer one.
/// </summary>
public sealed class EnclaveDestination : IDisposable
{
    private readonly Module module;
    private readonly CompileOptions compileOptions;
    private readonly Task<CompiledModule> compiling;
    private readonly CancellationTokenSource disposed = new();

    /// <summary>
    /// How long a destination may spend warming the module up (<see cref="Execution.WarmUp"/>: resume versions, then
    /// the JIT of the ordinary code) before it lets the source freeze: 0.1–0.2 s for a suite program; a very large
    /// module stops here and compiles the rest when needed.
    /// </summary>
    public static readonly TimeSpan JitBudget = TimeSpan.FromSeconds(2);
    private Task ready;
    private readonly InstanceOptions instanceOptions;
    private readonly Func<byte[], IGuestEnvironment> environmentFactory;
    private readonly IRecordProtector protector;
    // Page batches applied per stream, under `gate` (what the state's per-stream counts are checked against).
    private readonly long[] received;
    // Records opened per stream: the sequence number the next one must carry. Each under its stream's lock, not
    // `gate`: decrypting a batch (AES-GCM over up to a megabyte) then runs in parallel on the page streams instead of
    // one at a time, which matters most in the frozen last round.
    private readonly long[] opened;
    private readonly object[] streamGates;
    private readonly object gate = new();
    private readonly LinearMemory? memory;
    private byte[] pageRound = [];
    private GuestProgram? program;
    private FrameRecord[]? frames;
    private long pagesApplied;
    private PostCopyPages? postCopy;
    private KernelPostCopy? kernel;
    private PageMap? absentMap;
    private readonly bool kernelPostCopy;
    private readonly IStateAdmission? admission;
    private ulong arrivedEpoch;

    /// <param name="kernelPostCopy">
    /// Serve post-copy with userfaultfd: the memory is registered (missing mode) when the state arrives, at its final
    /// size; compiled code must be fully interruptible.
    /// </param>
    /// <param name="jitBudget">Time for the warm-up (resume versions, JIT) before <see cref="Ready"/> (default <see cref="JitBudget"/>).</param>
    public EnclaveDestination(Module module, CompileOptions compile, InstanceOptions instanceOptions,
        Func<byte[], IGuestEnvironment> environmentFactory, IRecordProtector protector, int streams,
        bool kernelPostCopy = false, IStateAdmission? admission = null, TimeSpan? jitBudget = null)
    {
        this.admission = admission;
        this.module = module;
        this.instanceOptions = instanceOptions;
        this.environmentFactory = environmentFactory;
        this.protector = protector;
        received = new long[streams];
        opened = new long[streams];
        streamGates = new object[streams];
        for (var i = 0; i < streams; i++) streamGates[i] = new object();
        compileOptions = compile;
        _ = ModuleIdentity.Sha256(module); // hashed now (and cached), not when the state arrives
        // Compiled in the background: pages are only copied into memory, which exists without the code, so the
        // compilation (~100 ms for a suite program, over a second for SQLite) overlaps the first round instead of
        // delaying the setup's acknowledgement. Needed by the state (see Ready).
        // Then warmed up (bounded): the resume versions of every function, which are what rebuilds the frozen frames,
        // and the JIT of the ordinary code; what is ready before the freeze is what the switch-over does not wait for
        // (CompleteState compiles what is missing).
        compiling = Task.Run(() =>
        {
            var compiled = ModuleCompiler.Compile(module, compile);
            try
            {
                Execution.WarmUp(compiled, jitBudget ?? JitBudget, disposed.Token);
            }
            catch (OperationCanceledException)
            {
                // The migration ended first; nothing will run this code.
            }
            return compiled;
        });
        ready = compiling;
        if (module.Memories.Length > 0 && module.ImportedMemoryCount == 0)
        {
            var mt = module.Memories[0];
            ulong? max = mt.Limits.Max;
            if (instanceOptions.MaxMemoryBytes is { } cap) max = Math.Min(max ?? ulong.MaxValue, cap / MemoryType.PageSize);
            memory = new LinearMemory(mt.Limits.Min, max, mt.Is64, instanceOptions.ReserveCapBytes);
        }
        if (kernelPostCopy)
        {
            if (memory is null) throw new InvalidOperationException("post-copy of a module without memory");
            if (!compile.FullyInterruptible) throw new InvalidOperationException("kernel post-copy needs code compiled fully interruptible");
            // Registered by Prepare, before any page arrives, at the size the source announced; if the guest grew its
            // memory before the freeze, registered again when the state arrives (see CompleteState).
            this.kernelPostCopy = true;
        }
    }

    /// <summary>
    /// Completes when the module is compiled (and rehearsed, if asked): the state needs it, so a destination awaits it
    /// before it lets the source freeze. Faults if the module cannot be compiled.
    /// </summary>
    public Task Ready
    {
        get
        {
            lock (gate) return ready;
        }
    }

    /// <summary>
    /// Once compiled, builds one instance of the module with <paramref name="environment"/> and throws it away, before
    /// the state arrives. The first instantiation of a compiled module runs .NET code for the first time (the generated
    /// type's initialisers, the import bindings): milliseconds that would otherwise fall inside the downtime, in
    /// <see cref="CompleteState"/>. Part of <see cref="Ready"/>; a failure only goes to <paramref name="failed"/> (the
    /// real instantiation reports what is wrong). Takes ownership of <paramref name="environment"/>.
    /// </summary>
    public void Rehearse(IGuestEnvironment environment, Action<Exception>? failed = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        lock (gate)
        {
            ready = compiling.ContinueWith(t =>
            {
                using (environment)
                {
                    var compiled = t.GetAwaiter().GetResult(); // a compile error faults Ready
                    try
                    {
                        var linker = new Linker();
                        environment.Define(linker);
                        var instance = Instance.Instantiate(compiled, linker, instanceOptions with { RunStart = false, InitializeSegments = false });
                        environment.Bind(instance);
                        instance.State.DirtyMap?.Dispose();
                        instance.State.AbsentMap?.Dispose();
                        instance.Memory?.Dispose();
                    }
                    catch (Exception e)
                    {
                        failed?.Invoke(e);
                    }
                }
            }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    /// <summary>The compiled module, waiting for the compilation (and rehearsal) if it is still running.</summary>
    private CompiledModule Compiled()
    {
        Ready.GetAwaiter().GetResult();
        return compiling.Result;
    }

    /// <summary>
    /// Sizes the memory to the source's <paramref name="memoryBytes"/> (as announced at setup) before any page arrives
    /// and, for kernel post-copy, registers it with userfaultfd now rather than inside the downtime (about 5 ms at
    /// 1 GiB: the present-page map over the reservation, the handler thread). Optional: without it, the memory grows
    /// with the batches and kernel post-copy registers when the state arrives.
    /// </summary>
    /// <exception cref="MigrationIntegrityException">The memory does not fit here.</exception>
    public void Prepare(ulong memoryBytes)
    {
        lock (gate)
        {
            if (pagesApplied > 0 || kernel is not null) throw new InvalidOperationException("prepare before any page arrives");
            EnsureSize(memoryBytes);
            if (kernelPostCopy && memory!.Size > 0) kernel = KernelPostCopy.RegisterEarly(memory);
            if (memory is not null && compileOptions.PresenceChecks && absentMap is null)
            {
                // Compiled post-copy marks every pending page in this map while the guest is down; mapped now.
                absentMap = new PageMap(memory.ReservedBytes);
                absentMap.Populate((long)(memory.Size >> PageMap.PageShift));
            }
        }
    }

    /// <summary>Kernel-based post-copy (null unless requested).</summary>
    public KernelPostCopy? KernelPostCopy => kernel;

    /// <summary>Completes when every page is here (post-copy), at once otherwise.</summary>
    public Task PostCopyCompletion => postCopy?.Completion ?? kernel?.Completion ?? Task.CompletedTask;

    /// <summary>The memory being filled (before the guest exists).</summary>
    public LinearMemory? Memory => memory;

    public long PagesApplied => Interlocked.Read(ref pagesApplied);

    public GuestProgram? Program => program;

    private void EnsureSize(ulong bytes)
    {
        if (memory is null)
        {
            if (bytes > 0) throw new MigrationIntegrityException("pages arrived for a module without memory");
            return;
        }
        if (bytes > memory.Size)
        {
            if (bytes % MemoryType.PageSize != 0 || memory.Grow((bytes - memory.Size) / MemoryType.PageSize) < 0)
            {
                throw new MigrationIntegrityException($"the source's memory of {bytes} bytes does not fit here (limit {memory.MaxPages} pages)");
            }
        }
        var pages = (long)(memory.Size / MigrationRecords.PageSize);
        if (pageRound.Length < pages) Array.Resize(ref pageRound, (int)pages);
    }

    /// <summary>Checks and applies one page batch that arrived on <paramref name="stream"/>.</summary>
    public void ApplyBatch(int stream, ReadOnlySpan<byte> record)
    {
        var copy = ArrayPool<byte>.Shared.Rent(record.Length);
        try
        {
            record.CopyTo(copy);
            ApplyBatchInPlace(stream, copy.AsSpan(0, record.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    /// <summary>
    /// Like <see cref="ApplyBatch"/>, opening the record where it lies (no copy before the pages are written to
    /// memory): <paramref name="record"/> is consumed. The driver's received frames are used this way.
    /// </summary>
    public unsafe void ApplyBatchInPlace(int stream, Span<byte> record)
    {
        if ((uint)stream >= (uint)received.Length) throw new MigrationIntegrityException($"batch on unknown stream {stream}");
        var n = OpenNextInPlace(MigrationRecordKind.PageBatch, stream, record);
        var batch = new MigrationRecords.Batch(record.Slice(protector.HeaderSize, n));
        if (batch.Round is < 0 or > 250) throw new MigrationIntegrityException($"batch claims round {batch.Round}");
        lock (gate)
        {
            EnsureSize(batch.MemoryBytes);
            var pages = pageRound.Length;
            var stamp = (byte)(batch.Round + 1);
            for (var i = 0; i < batch.Count; i++)
            {
                var p = batch.Page(i);
                if ((ulong)p >= (ulong)pages) throw new MigrationIntegrityException($"batch page {p} lies outside memory");
                if (pageRound[p] > stamp) continue;
                // Post-copy: once a page is here the guest may have written it; a second copy must not land.
                if (postCopy is not null && postCopy.IsPresent(p)) continue;
                pageRound[p] = stamp;
                if (kernel is not null) kernel.Write(p, batch.Data(i), zero: false);
                else batch.Data(i).CopyTo(new Span<byte>(memory!.Base + p * MigrationRecords.PageSize, MigrationRecords.PageSize));
                postCopy?.Arrived(p);
            }
            for (var i = 0; i < batch.ZeroCount; i++)
            {
                var p = batch.ZeroPage(i);
                if ((ulong)p >= (ulong)pages) throw new MigrationIntegrityException($"batch page {p} lies outside memory");
                if (pageRound[p] > stamp) continue;
                if (postCopy is not null && postCopy.IsPresent(p)) continue;
                pageRound[p] = stamp;
                if (kernel is not null) kernel.Write(p, default, zero: true);
                else new Span<byte>(memory!.Base + p * MigrationRecords.PageSize, MigrationRecords.PageSize).Clear();
                postCopy?.Arrived(p);
            }
            pagesApplied += batch.Count + batch.ZeroCount;
            // Counted once applied, not once opened: a state whose counts are met finds every page in place.
            received[stream]++;
        }
        BatchApplied?.Invoke();
    }

    /// <summary>
    /// Opens a small control record (state, epoch intent, frame hint, commit) into the start of <paramref name="buffer"/>, which
    /// must hold the whole record: copied there and opened in place (<see cref="OpenNextInPlace"/>). Returns the
    /// plaintext's length.
    /// </summary>
    private int OpenNext(MigrationRecordKind kind, int stream, ReadOnlySpan<byte> record, Span<byte> buffer)
    {
        record.CopyTo(buffer);
        var n = OpenNextInPlace(kind, stream, buffer[..record.Length]);
        buffer.Slice(protector.HeaderSize, n).CopyTo(buffer); // overlapping: CopyTo moves like memmove
        return n;
    }

    /// <summary>
    /// Opens the next record of <paramref name="stream"/> (which must be of <paramref name="kind"/> and carry the
    /// stream's next sequence number) where it lies: on return the plaintext is at the protector's header size;
    /// returns its length. A refused record leaves the count unchanged (the protector refuses everything after it
    /// anyway).
    /// </summary>
    private int OpenNextInPlace(MigrationRecordKind kind, int stream, Span<byte> record)
    {
        lock (streamGates[stream])
        {
            var n = protector.OpenInPlace(new RecordContext(kind, stream, opened[stream]), record);
            opened[stream]++;
            return n;
        }
    }

    /// <summary>Batches received so far on each stream.</summary>
    public long[] BatchesReceived
    {
        get
        {
            lock (gate) return (long[])received.Clone();
        }
    }

    /// <summary>Signalled after every applied batch (drivers wait on it for the counts a state record announces).</summary>
    public event Action? BatchApplied;

    /// <summary>Checks and decodes the final state record; the guest is built by <see cref="CompleteState"/>.</summary>
    public MigrationRecords.StateRecord OpenState(ReadOnlySpan<byte> record)
    {
        lock (gate)
        {
            var plain = new byte[record.Length];
            var n = OpenNext(MigrationRecordKind.State, 0, record, plain);
            var state = MigrationRecords.DecodeState(plain.AsSpan(0, n));
            if (!state.ModuleSha256.AsSpan().SequenceEqual(ModuleIdentity.Sha256(module)))
            {
                throw new MigrationIntegrityException("the state belongs to another module");
            }
            if (state.BatchesPerStream.Length != received.Length) throw new MigrationIntegrityException("stream count mismatch");
            return state;
        }
    }

    /// <summary>
    /// Verifies every batch the state announces has arrived (none missing, none extra), then builds the guest
    /// (not yet running). With <paramref name="postCopy"/> the pages the state lists as pending may still arrive.
    /// </summary>
    public ArrivedState CompleteState(MigrationRecords.StateRecord state, Action<string>? trace = null)
    {
        lock (gate)
        {
            for (var s = 1; s < received.Length; s++)
            {
                if (state.BatchesPerStream[s] != received[s])
                {
                    throw new MigrationIntegrityException($"stream {s}: {state.BatchesPerStream[s]} batches were sent, {received[s]} arrived");
                }
            }
            EnsureSize(state.MemoryBytes);
        }
        trace?.Invoke("memory sized");
        admission?.Admit(state);
        arrivedEpoch = state.Epoch;
        trace?.Invoke("epoch admitted");
        var compiled = Compiled();
        trace?.Invoke("code compiled");

        var environment = environmentFactory(state.Environment);
        var linker = new Linker();
        environment.Define(linker);
        trace?.Invoke("environment restored");
        var instance = Instance.Instantiate(compiled, linker,
            instanceOptions with { RunStart = false, InitializeSegments = false, AdoptMemory = memory, AdoptAbsentMap = absentMap });
        absentMap = null; // the instance owns it now
        trace?.Invoke("instantiated");
        environment.Bind(instance);
        InstanceStateApplier.Apply(instance, state.Globals, state.Tables, state.DroppedData, state.DroppedElements);
        trace?.Invoke("globals and tables applied");
        var resolved = StateCodec.ResolveFrames(state.Frames, instance);
        frames = resolved;
        trace?.Invoke("instance rebuilt");
        // The frames are checked against the code, and any resume version the warm-up (JitBudget) and the frame hint
        // did not reach is compiled here: the guest's first instruction then follows Start at once, and this work is
        // counted in the downtime (before Ready) instead of after it.
        var hinted = hintedResume is { IsCompleted: true } ? "done" : hintedResume is null ? "none" : "still compiling";
        ResumeVersionsCompiledAfterState = Execution.PrepareResume(instance, resolved);
        trace?.Invoke($"resume code for {resolved.Length} frames ready (hinted compile: {hinted}; compiled after the state: {ResumeVersionsCompiledAfterState})");
        if (kernelPostCopy && (state.PendingPages is not null || kernel is not null))
        {
            // Every page not pending is here (or was zero on the source); an early registration with nothing pending
            // finishes at once.
            var pending = state.PendingPages ?? [];
            lock (gate)
            {
                if (kernel is null || kernel.RegisteredPages < (long)(memory!.Size / MigrationRecords.PageSize))
                {
                    // No early registration, or the memory grew past it: pages beyond it were written as ordinary
                    // memory. Register the whole memory again, over what is populated (discarding pending copies).
                    kernel?.Dispose();
                    kernel = KernelPostCopy.RegisterLate(memory!, pending, discardPending: pagesApplied > 0);
                }
                kernel.BeginPostCopy(pending, pageRequester);
            }
        }
        else if (state.PendingPages is { } pending)
        {
            if (!compiled.Options.PresenceChecks) throw new InvalidOperationException("post-copy needs a guest compiled with presence checks");
            lock (gate) postCopy = new PostCopyPages(instance, pending, pageRequester);
        }
        if (state.PendingPages is not null) trace?.Invoke("post-copy armed");
        program = new GuestProgram(instance, environment);
        return new ArrivedState(state.FrozenAtUnixNanos, state.FinalRound, state.MemoryBytes, state.Epoch, state.Frames.Length, state.PendingPages is not null);
    }

    private Action<long[]> pageRequester = _ => { };

    /// <summary>Post-copy: how the destination asks the source for pages the guest is waiting for.</summary>
    public void SetPageRequester(Action<long[]> requester) => pageRequester = requester;

    /// <summary>Post-copy progress and fault statistics (null unless the state left pages pending).</summary>
    public PostCopyPages? PostCopy => postCopy;

    private long repliesSealed;
    // The destination's one decision: accept the commit (and run) or discard (and never run). Under `gate`.
    private bool commitAccepted;
    private byte[]? discardProof;

    /// <summary>The Ready reply for the source: this enclave holds the complete, verified state (of the arrived epoch).</summary>
    public byte[] SealReady()
    {
        Span<byte> body = stackalloc byte[9];
        body[0] = (byte)MigrationRecordKind.Ready;
        BinaryPrimitives.WriteUInt64LittleEndian(body[1..], arrivedEpoch);
        return SealReply(MigrationRecordKind.Ready, body);
    }

    /// <summary>The Resumed reply for the source: the guest runs here since <paramref name="resumedAtUnixNanos"/>.</summary>
    public byte[] SealResumed(long resumedAtUnixNanos)
    {
        Span<byte> body = stackalloc byte[17];
        body[0] = (byte)MigrationRecordKind.Resumed;
        BinaryPrimitives.WriteUInt64LittleEndian(body[1..], arrivedEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(body[9..], resumedAtUnixNanos);
        return SealReply(MigrationRecordKind.Resumed, body);
    }

    /// <summary>
    /// Throws the arrived state away for good, unless the commit was already accepted (then null: the guest runs
    /// here). Returns the proof for the source — a sealed Discarded reply carrying the epoch — so that a confidential
    /// source whose commit went missing can resume without risking a second copy. Idempotent: the same proof again.
    /// Null too when there is no session to seal under yet (nothing was ready to run then anyway).
    /// </summary>
    public byte[]? TrySealDiscarded()
    {
        lock (gate)
        {
            if (commitAccepted) return null;
            if (discardProof is not null) return discardProof;
            Span<byte> body = stackalloc byte[9];
            body[0] = (byte)MigrationRecordKind.Discarded;
            BinaryPrimitives.WriteUInt64LittleEndian(body[1..], arrivedEpoch);
            try
            {
                discardProof = SealReply(MigrationRecordKind.Discarded, body);
            }
            catch (InvalidOperationException)
            {
                discardProof = [];
            }
            return discardProof.Length == 0 ? null : discardProof;
        }
    }

    private byte[] SealReply(MigrationRecordKind kind, ReadOnlySpan<byte> body)
    {
        var output = new byte[body.Length + protector.Overhead];
        int n;
        lock (gate) n = protector.ProtectReply(new RecordContext(kind, 0, repliesSealed++), body, output);
        return output[..n];
    }

    /// <summary>
    /// Opens the source's epoch intent (control stream, before the state) and passes it to the admission, which may
    /// prepare the epoch record ahead (see <see cref="IStateAdmission.Anticipate"/>).
    /// </summary>
    public void OpenEpochIntent(ReadOnlySpan<byte> record)
    {
        if (record.Length > 256) throw new MigrationIntegrityException($"an epoch intent of {record.Length} bytes");
        Span<byte> body = stackalloc byte[256];
        var n = OpenNext(MigrationRecordKind.EpochIntent, 0, record, body);
        if (n < 9 || body[0] != (byte)MigrationRecordKind.EpochIntent) throw new MigrationIntegrityException("not an epoch intent");
        admission?.Anticipate(body[1..(n - 8)], BinaryPrimitives.ReadUInt64LittleEndian(body[(n - 8)..n]));
    }

    /// <summary>
    /// Opens the source's frame hint and compiles the resume versions of those frames' functions in the background
    /// (see <see cref="MigrationRecordKind.FrameHint"/>; a head start where the warm-up has not reached them, e.g. a
    /// module too large for <see cref="JitBudget"/>); <see cref="CompleteState"/> then finds them done or waits, and
    /// compiles only what the state's real frames still need. Invalid entries are skipped: the hint decides nothing.
    /// </summary>
    public void OpenFrameHint(ReadOnlySpan<byte> record)
    {
        const int limit = 1024; // the body of EnclaveSource.MaxHintedFrames frames plus any protector's overhead
        if (record.Length > limit) throw new MigrationIntegrityException($"a frame hint of {record.Length} bytes");
        // A source freezes once per attempt; more hints could only be someone making this side compile.
        if (hintedResume is not null) throw new MigrationIntegrityException("a second frame hint");
        Span<byte> body = stackalloc byte[limit];
        var n = OpenNext(MigrationRecordKind.FrameHint, 0, record, body);
        if (n < 5 || body[0] != (byte)MigrationRecordKind.FrameHint) throw new MigrationIntegrityException("not a frame hint");
        var count = BinaryPrimitives.ReadInt32LittleEndian(body[1..]);
        if (count < 0 || count > EnclaveSource.MaxHintedFrames || n != 5 + (count * 8)) throw new MigrationIntegrityException("a malformed frame hint");
        var frames = new (int Function, int SafePoint)[count];
        for (var i = 0; i < count; i++)
        {
            frames[i] = (BinaryPrimitives.ReadInt32LittleEndian(body[(5 + (i * 8))..]), BinaryPrimitives.ReadInt32LittleEndian(body[(9 + (i * 8))..]));
        }
        hintedResume = Task.Run(() =>
        {
            try
            {
                Execution.Precompile(Compiled(), frames);
            }
            catch (Exception)
            {
                // Only a head start: a module that failed to compile fails the migration elsewhere.
            }
        });
    }

    private Task? hintedResume;

    /// <summary>Resume versions <see cref="CompleteState"/> still had to compile (0 when the warm-up or a frame hint covered every frame).</summary>
    public int ResumeVersionsCompiledAfterState { get; private set; }

    /// <summary>The compile started by the frame hint (completed when there was none); for tests and traces.</summary>
    public Task HintedResume => hintedResume ?? Task.CompletedTask;

    /// <summary>Checks the source's protected commit decision (for the epoch of the state that arrived).</summary>
    public void OpenCommit(ReadOnlySpan<byte> record, Action<string>? trace = null)
    {
        if (record.Length > 128) throw new MigrationIntegrityException($"a commit record of {record.Length} bytes");
        Span<byte> body = stackalloc byte[128];
        int n;
        lock (gate)
        {
            if (discardProof is not null) throw new MigrationIntegrityException("the state was already discarded here: a late commit cannot start it");
            n = OpenNext(MigrationRecordKind.Commit, 0, record, body); // gate, then the stream's lock: never the reverse
            if (n != 8 || System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(body) != arrivedEpoch)
            {
                throw new MigrationIntegrityException("the commit does not match the state that arrived");
            }
            commitAccepted = true;
        }
        trace?.Invoke("commit authenticated");
        admission?.Commit();
    }

    /// <summary>Starts the guest where it stopped on the source; returns the time of its first instruction here.</summary>
    public long Start()
    {
        var p = program ?? throw new InvalidOperationException("apply the state first");
        var at = GuestProgram.UnixNanosNow();
        p.StartFrom(frames!);
        return at;
    }

    public void Dispose()
    {
        disposed.Cancel();
        kernel?.Dispose();
        absentMap?.Dispose();
        if (program is null) memory?.Dispose();
        else program.Dispose();
    }
}
