using System.Diagnostics;
using System.Security.Cryptography;
using Ferry.Enclave.Migration;
using Ferry.Migration.Protocol;

namespace Ferry.Migration.Strategies;

/// <summary>Where a destination is in its migration (reported to its agent, which answers the source's questions).</summary>
public enum DestinationPhase
{
    Receiving,
    Ready,
    Running,
    Failed,
}

/// <summary>What the destination side produced: the enclave (with its running guest) and its own measurements.</summary>
public sealed record DestinationResult(EnclaveDestination Enclave, WorkloadSetup Setup, long ResumedAtUnixNanos, ArrivedState State)
{
    /// <summary>Post-copy: completes when every page has arrived (immediately otherwise).</summary>
    public Task PostCopy { get; init; } = Task.CompletedTask;
}

/// <summary>
/// The destination side of a migration: accepts the streams, checks and applies everything through the enclave,
/// and starts the guest only after the source's commit. Any failure before that discards everything.
/// </summary>
public sealed class DestinationMigration
{
    private readonly Func<WorkloadSetup, ReadOnlyMemory<byte>, EnclaveDestination> createEnclave;
    private readonly Action<DestinationPhase, string?>? onPhase;
    private readonly TimeSpan peerTimeout;

    /// <summary>
    /// Called when a failed attempt discarded state that had arrived, with the enclave's sealed proof of it
    /// (<see cref="EnclaveDestination.TrySealDiscarded"/>): the runtime publishes it where the source can ask for it.
    /// </summary>
    public Action<byte[]>? Discarded { get; init; }
    private readonly Func<WorkloadSetup, IHandshakeChannel, CancellationToken, Task>? handshake;

    /// <summary>
    /// Completes when this side is ready for the guest's downtime (its runtime compiled the code on the critical
    /// path). The source is not let freeze before it: awaited (bounded by the peer timeout) before the SetupAck of
    /// stop-and-copy and post-copy, whose freeze follows at once, and before each RoundApplied of pre-copy and hybrid,
    /// whose first round gives it time. Otherwise the warm-up competes with the restore inside the downtime.
    /// </summary>
    public Func<Task>? BeforeFreeze { get; init; }

    /// <summary>Steps of the switch-over as they happen (the runtime prints them with timestamps under FERRY_TRACE=1).</summary>
    public Action<string>? Trace { get; init; }

    /// <summary>
    /// Before the source may freeze: the module must be compiled (<see cref="EnclaveDestination.Ready"/>; a compile
    /// error fails the migration), and <see cref="BeforeFreeze"/> should be done (waited for, bounded).
    /// </summary>
    private async Task AwaitBeforeFreezeAsync(EnclaveDestination enclave, CancellationToken ct)
    {
        await enclave.Ready.WaitAsync(ct).ConfigureAwait(false);
        if (BeforeFreeze is not null)
        {
            try
            {
                await BeforeFreeze().WaitAsync(peerTimeout, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Only a matter of speed: go on cold rather than fail the migration.
            }
        }
        // Compiling and warming up allocate: a generation-0 budget nearly used up then ran out while the state was
        // being restored, and that collection (4.6 and 8 ms here, all threads stopped) fell inside the downtime
        // (FERRY_TRACE gc= counts, docs/benchmarks.md). Collect now, while the guest still runs on the source; the
        // restore's own allocations fit in a fresh budget. Pre-copy calls this before every round's acknowledgement
        // (any round may be the last), so each round's measured time includes one such collection.
        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
    }

    /// <param name="handshake">
    /// Confidential workloads (<see cref="WorkloadSetup.Confidential"/>): runs the destination's half of the
    /// attestation handshake over the control stream after the enclave exists and before any page is accepted; it
    /// must key the enclave's record protector. A confidential setup without it is refused.
    /// </param>
    public DestinationMigration(Func<WorkloadSetup, ReadOnlyMemory<byte>, EnclaveDestination> createEnclave,
        Action<DestinationPhase, string?>? onPhase = null, TimeSpan? peerTimeout = null,
        Func<WorkloadSetup, IHandshakeChannel, CancellationToken, Task>? handshake = null)
    {
        this.createEnclave = createEnclave;
        this.onPhase = onPhase;
        this.peerTimeout = peerTimeout ?? TimeSpan.FromSeconds(60);
        this.handshake = handshake;
    }

    /// <summary>
    /// Runs the destination side. Returns once the guest runs here (for post-copy, pages may still be arriving;
    /// <paramref name="postCopyDone"/> completes when every page is here).
    /// </summary>
    public async Task<DestinationResult> RunAsync(Stream[] rawStreams, CancellationToken ct, Action<Task>? postCopyDone = null)
    {
        var frames = rawStreams.Select(s => new FrameStream(s)).ToArray();
        EnclaveDestination? enclave = null;
        var started = false;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            var streams = await OrderStreamsAsync(frames, linked.Token).ConfigureAwait(false);
            var control = streams[0];
            WorkloadSetup setup;
            using (var f = await control.ExpectAsync(MessageType.Setup, linked.Token).ConfigureAwait(false)) setup = Messages.ParseSetup(f.Payload);
            if (setup.Streams != streams.Length) throw new ProtocolException($"setup names {setup.Streams} streams, {streams.Length} connected");
            if (setup.ModuleBytes is < 8 or > 1L << 30) throw new ProtocolException("implausible module size");
            var module = new byte[setup.ModuleBytes];
            for (var got = 0; got < module.Length;)
            {
                using var f = await control.ExpectAsync(MessageType.ModuleChunk, linked.Token).ConfigureAwait(false);
                if (f.Length > module.Length - got) throw new ProtocolException("module longer than announced");
                f.Payload.CopyTo(module.AsSpan(got));
                got += f.Length;
            }
            if (!Convert.ToHexStringLower(SHA256.HashData(module)).Equals(setup.ModuleSha256, StringComparison.Ordinal))
            {
                throw new ProtocolException("the module does not match its announced SHA-256");
            }
            enclave = createEnclave(setup, module);
            // Memory sized (and for kernel post-copy registered with userfaultfd) now, not inside the downtime.
            enclave.Prepare(setup.MemoryBytes);
            if (setup.Confidential)
            {
                if (handshake is null) throw new ProtocolException("this destination cannot receive confidential workloads (no attestation handshake configured)");
                using var bounded = CancellationTokenSource.CreateLinkedTokenSource(linked.Token);
                bounded.CancelAfter(peerTimeout);
                await handshake(setup, new FrameHandshakeChannel(control), bounded.Token).ConfigureAwait(false);
            }
            var requests = System.Threading.Channels.Channel.CreateUnbounded<long[]>();
            enclave.SetPageRequester(pages => requests.Writer.TryWrite(pages));
            var applied = new Pulse();
            enclave.BatchApplied += () =>
            {
                Active();
                applied.Set();
            };
            if (setup.Strategy is Strategy.StopCopy or Strategy.PostCopy) await AwaitBeforeFreezeAsync(enclave, linked.Token).ConfigureAwait(false);
            await control.WriteAsync(MessageType.SetupAck, Array.Empty<byte>(), linked.Token).ConfigureAwait(false);
            // The silence that counts starts now: compiling the module (stop-and-copy, post-copy) may take longer than the timeout.
            Active();

            // Page streams: apply every batch as it comes.
            var receivers = new List<Task>();
            for (var s = 1; s < streams.Length; s++) receivers.Add(ReceiveBatchesAsync(streams[s], s, enclave, linked.Token));
            // A module that fails to compile (in the background, see EnclaveDestination.Ready) ends the migration
            // like a failed page stream: at once, not when the source tires of waiting for an acknowledgement.
            var receiversFailed = UnlessNotCompiled(Task.WhenAll(receivers), enclave.Ready);
            // Pre-copy rounds to acknowledge once applied (one at a time from an honest source; more are dropped).
            var roundsSent = System.Threading.Channels.Channel.CreateBounded<(int Round, long[] Batches)>(
                new System.Threading.Channels.BoundedChannelOptions(4) { FullMode = System.Threading.Channels.BoundedChannelFullMode.DropWrite });
            using var stopAcks = CancellationTokenSource.CreateLinkedTokenSource(linked.Token);
            var acks = AcknowledgeRoundsAsync(control, roundsSent.Reader, enclave, applied, receiversFailed, c => AwaitBeforeFreezeAsync(enclave, c), stopAcks.Token, linked.Token);

            // Control stream until the state arrives (post-copy batches may come on it later).
            MigrationRecords.StateRecord stateRecord;
            while (true)
            {
                var f = await ReadOrFailAsync(control, receiversFailed, linked.Token).ConfigureAwait(false);
                using (f)
                {
                    if (f.Type == MessageType.RoundSent)
                    {
                        roundsSent.Writer.TryWrite(Messages.ParseRoundSent(f.Payload, streams.Length));
                        continue;
                    }
                    if (f.Type == MessageType.State)
                    {
                        Trace?.Invoke($"state received ({f.Length} bytes)");
                        stateRecord = enclave.OpenState(f.Payload);
                        Trace?.Invoke("state opened");
                        break;
                    }
                    if (f.Type == MessageType.PageBatch)
                    {
                        enclave.ApplyBatchInPlace(0, f.WritablePayload);
                        continue;
                    }
                    if (f.Type == MessageType.EpochIntent)
                    {
                        enclave.OpenEpochIntent(f.Payload);
                        continue;
                    }
                    if (f.Type == MessageType.FrameHint)
                    {
                        enclave.OpenFrameHint(f.Payload);
                        Trace?.Invoke("frame hint received");
                        continue;
                    }
                    if (f.Type == MessageType.Abort) throw new MigrationAbortedException(System.Text.Encoding.UTF8.GetString(f.Payload));
                    throw new ProtocolException($"unexpected {f.Type} before the state");
                }
            }
            // An honest source waited for its last acknowledgement before freezing; stop whatever a hostile one left.
            roundsSent.Writer.TryComplete();
            await stopAcks.CancelAsync().ConfigureAwait(false);
            await acks.ConfigureAwait(false);
            // The state says how many batches each stream carried; wait for the stragglers. If they do not come,
            // CompleteState reports exactly what is missing.
            if (!await WaitForBatchesAsync(enclave, applied, stateRecord.BatchesPerStream, receiversFailed, peerTimeout, linked.Token).ConfigureAwait(false)
                && receiversFailed.IsFaulted)
            {
                await receiversFailed.ConfigureAwait(false);
            }
            Trace?.Invoke("every announced batch applied");
            var arrived = enclave.CompleteState(stateRecord, Trace);
            onPhase?.Invoke(DestinationPhase.Ready, null);
            await control.WriteAsync(MessageType.Ready, enclave.SealReady(), linked.Token).ConfigureAwait(false);
            using (var f = await ReadOrFailAsync(control, receiversFailed, linked.Token).ConfigureAwait(false))
            {
                if (f.Type == MessageType.Abort) throw new MigrationAbortedException(System.Text.Encoding.UTF8.GetString(f.Payload));
                if (f.Type != MessageType.Commit) throw new ProtocolException($"expected Commit, got {f.Type}");
                enclave.OpenCommit(f.Payload, Trace);
            }
            Trace?.Invoke("commit opened");

            // Committed: the source never runs the guest again. Start it here, whatever happens to the streams.
            var resumedAt = enclave.Start();
            started = true;
            onPhase?.Invoke(DestinationPhase.Running, null);
            try
            {
                await control.WriteAsync(MessageType.Resumed, enclave.SealResumed(resumedAt), linked.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The source learns the outcome from this side's agent instead.
            }
            if (!arrived.PostCopy)
            {
                await DrainAsync(streams, receivers).ConfigureAwait(false);
                return new DestinationResult(enclave, setup, resumedAt, arrived);
            }
            var postCopy = Task.Run(() => PostCopyAsync(streams, receivers, enclave, requests, ct), CancellationToken.None);
            return new DestinationResult(enclave, setup, resumedAt, arrived) { PostCopy = postCopy };
        }
        catch (Exception e) when (!started)
        {
            onPhase?.Invoke(DestinationPhase.Failed, e.Message);
            try
            {
                if (frames.Length > 0)
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await frames[0].WriteAsync(MessageType.Abort, Messages.Text(e.Message), cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
            }
            await linked.CancelAsync().ConfigureAwait(false);
            if (enclave?.TrySealDiscarded() is { } proof) Discarded?.Invoke(proof);
            enclave?.Dispose();
            foreach (var f in frames) await f.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Post-copy, after the guest started here: forward its page requests, apply urgent pages from the control
    /// stream and pushed pages from the page streams, and tell the source when the last one arrived.
    /// </summary>
    private async Task PostCopyAsync(FrameStream[] streams, List<Task> receivers, EnclaveDestination enclave,
        System.Threading.Channels.Channel<long[]> requests, CancellationToken ct)
    {
        var control = streams[0];
        var forward = Task.Run(async () =>
        {
            await foreach (var pages in requests.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                await control.WriteAsync(MessageType.PageRequest, Messages.Pages(pages), ct).ConfigureAwait(false);
            }
        }, ct);
        long[]? announced = null;
        while (announced is null)
        {
            using var f = await control.ReadAsync(ct).ConfigureAwait(false) ?? throw new ProtocolException("the source closed the control stream during post-copy");
            switch (f.Type)
            {
                case MessageType.PageBatch:
                    enclave.ApplyBatchInPlace(0, f.WritablePayload);
                    break;
                case MessageType.PostCopyDone:
                    announced = Messages.ParsePages(f.Payload);
                    break;
                default:
                    throw new ProtocolException($"unexpected {f.Type} during post-copy");
            }
        }
        var pending = enclave.PostCopyCompletion;
        var deadline = Stopwatch.StartNew();
        while (!pending.IsCompleted)
        {
            // Urgent pages may still be in flight on the control stream after the announcement.
            var read = control.ReadAsync(ct).AsTask();
            var done = await Task.WhenAny(read, pending, Task.Delay(peerTimeout, ct)).ConfigureAwait(false);
            if (done == read)
            {
                using var f = await read.ConfigureAwait(false) ?? throw new ProtocolException("control stream closed before every page arrived");
                if (f.Type == MessageType.PageBatch) enclave.ApplyBatchInPlace(0, f.WritablePayload);
                continue;
            }
            if (done != pending && deadline.Elapsed > peerTimeout) throw new TimeoutException("pages missing after the source finished post-copy");
        }
        requests.Writer.TryComplete();
        await control.WriteAsync(MessageType.Complete, Array.Empty<byte>(), ct).ConfigureAwait(false);
        try
        {
            await forward.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A request still queued when the last page arrived is moot; the source may have closed already.
        }
        await DrainAsync(streams, receivers).ConfigureAwait(false);
    }

    /// <summary>Completes as <paramref name="receivers"/> does, but faults as soon as <paramref name="ready"/> faults.</summary>
    private static async Task UnlessNotCompiled(Task receivers, Task ready)
    {
        if (await Task.WhenAny(receivers, ready).ConfigureAwait(false) == ready) await ready.ConfigureAwait(false);
        await receivers.ConfigureAwait(false);
    }

    /// <summary>Answers each RoundSent with RoundApplied once every batch it counts has been applied here.</summary>
    private static async Task AcknowledgeRoundsAsync(FrameStream control, System.Threading.Channels.ChannelReader<(int Round, long[] Batches)> rounds,
        EnclaveDestination enclave, Pulse applied, Task receivers, Func<CancellationToken, Task> beforeFreeze, CancellationToken stop, CancellationToken ct)
    {
        try
        {
            await foreach (var (round, batches) in rounds.ReadAllAsync(stop).ConfigureAwait(false))
            {
                // A page stream that failed or ended is reported by the main loop.
                if (!await WaitForBatchesAsync(enclave, applied, batches, receivers, Timeout.InfiniteTimeSpan, stop).ConfigureAwait(false)) return;
                await beforeFreeze(stop).ConfigureAwait(false);
                // Not cancelled by `stop`: a write cut short would leave half a frame on the control stream.
                await control.WriteAsync(MessageType.RoundApplied, Messages.Int64(round), ct).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Acknowledgements only pace the source; whatever broke here surfaces on the main path.
        }
    }

    /// <summary>Wakes every waiter once per <see cref="Set"/>; waiters take <see cref="Next"/> before checking their condition.</summary>
    private sealed class Pulse
    {
        private TaskCompletionSource current = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Next => Volatile.Read(ref current).Task;

        public void Set() => Interlocked.Exchange(ref current, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>
    /// Waits until every stream has applied at least <paramref name="announced"/> batches (true), or the page
    /// streams ended (<paramref name="receivers"/> completed: nothing more can arrive) or <paramref name="limit"/>
    /// passed (false).
    /// </summary>
    private static async Task<bool> WaitForBatchesAsync(EnclaveDestination enclave, Pulse applied, long[] announced, Task receivers, TimeSpan limit, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var next = applied.Next; // taken before the check: a batch applied in between still wakes us
            if (Covers(enclave.BatchesReceived, announced)) return true;
            if (receivers.IsCompleted || (limit != Timeout.InfiniteTimeSpan && waited.Elapsed > limit)) return false;
            await Task.WhenAny(next, Task.Delay(TimeSpan.FromMilliseconds(100), ct)).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
    }

    private static bool Covers(long[] received, long[] announced)
    {
        for (var s = 1; s < announced.Length; s++)
        {
            if (received[s] < announced[s]) return false;
        }
        return true;
    }

    private static async Task<FrameStream[]> OrderStreamsAsync(FrameStream[] frames, CancellationToken ct)
    {
        var ordered = new FrameStream[frames.Length];
        Guid? migration = null;
        foreach (var f in frames)
        {
            using var hello = await f.ExpectAsync(MessageType.Hello, ct).ConfigureAwait(false);
            var (id, index) = Messages.ParseHello(hello.Payload);
            if (migration is { } m && m != id) throw new ProtocolException("streams of different migrations");
            migration = id;
            if ((uint)index >= (uint)frames.Length || ordered[index] is not null) throw new ProtocolException($"bad stream index {index}");
            ordered[index] = f;
        }
        return ordered;
    }

    private static async Task ReceiveBatchesAsync(FrameStream stream, int index, EnclaveDestination enclave, CancellationToken ct)
    {
        while (true)
        {
            using var f = await stream.ReadAsync(ct).ConfigureAwait(false);
            if (f is null) return;
            if (f.Type != MessageType.PageBatch) throw new ProtocolException($"unexpected {f.Type} on page stream {index}");
            enclave.ApplyBatchInPlace(index, f.WritablePayload);
        }
    }

    /// <summary>When a frame last arrived on any stream (Stopwatch ticks).</summary>
    private long lastActivity = Stopwatch.GetTimestamp();

    private void Active() => Volatile.Write(ref lastActivity, Stopwatch.GetTimestamp());

    /// <summary>
    /// The next control frame. The source is silent on the control stream for as long as pre-copy rounds take
    /// (minutes for a large, busy guest) while pages flow on the page streams, so only silence on every stream
    /// for the peer timeout counts as a lost source.
    /// </summary>
    private async Task<Frame> ReadOrFailAsync(FrameStream control, Task receivers, CancellationToken ct)
    {
        var read = control.ReadAsync(ct).AsTask();
        while (true)
        {
            var idle = Stopwatch.GetElapsedTime(Volatile.Read(ref lastActivity));
            if (idle >= peerTimeout) throw new TimeoutException($"the source sent nothing for {peerTimeout.TotalSeconds:0} s");
            var timeout = Task.Delay(peerTimeout - idle, ct);
            var done = await Task.WhenAny(read, receivers, timeout).ConfigureAwait(false);
            if (done == read) break;
            if (done == receivers && receivers.IsFaulted) await receivers.ConfigureAwait(false);
            if (done == receivers) receivers = read; // page streams ended cleanly: wait for the control frame alone
        }
        Active();
        return await read.ConfigureAwait(false) ?? throw new ProtocolException("the source closed the control stream");
    }

    private static async Task DrainAsync(FrameStream[] streams, List<Task> receivers)
    {
        foreach (var s in streams) await s.DisposeAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(receivers).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Streams closed under the receivers; nothing more was expected.
        }
    }
}
