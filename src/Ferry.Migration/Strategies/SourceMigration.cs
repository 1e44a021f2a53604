using System.Diagnostics;
using System.Threading.Channels;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Enclave.Tracking;
using Ferry.Migration.Protocol;
using Ferry.Migration.Transport;

namespace Ferry.Migration.Strategies;

/// <summary>Tunables of a migration.</summary>
public sealed record MigrationOptions
{
    public Strategy Strategy { get; init; } = Strategy.PreCopy;
    public TrackingMethod Tracking { get; init; } = TrackingMethod.Compiler;
    /// <summary>Parallel page streams (besides the control stream).</summary>
    public int Streams { get; init; } = 4;
    /// <summary>
    /// Pre-copy stops iterating once the remaining dirty pages fit this at the measured end-to-end bandwidth (until
    /// the destination applied them: see <see cref="MessageType.RoundApplied"/>).
    /// </summary>
    public TimeSpan DowntimeTarget { get; init; } = TimeSpan.FromMilliseconds(20);
    public int MaxRounds { get; init; } = 30;
    /// <summary>
    /// Pre-copy: a dirty set that already fits the target but has more than this many pages is not frozen yet while
    /// another round can still make it smaller: it is sent once more while the guest runs if it shrank by a fifth
    /// from the round before, and otherwise auto-converge slows the guest one step further first (until it is at
    /// its highest share; <see cref="AutoConverge"/>). The last round — inside the downtime — carries what the guest
    /// wrote during the round before it: a throttled btree at 1 GiB went from a 2,000–4,000-page round straight to
    /// the freeze with 330–390 pages left (3.5 ms of last pages, sealed); with streams handed to the destination
    /// runtime (faster rounds, less throttling) btree and kvstore froze with 700–1,200 pages that fitted the target,
    /// 6–9 ms of last pages (docs/benchmarks.md). Each extra round shrinks the set by a fifth or raises the
    /// throttle, so they end after a few. The default is the largest last round that travels on the control
    /// stream (<see cref="InlineLastRoundPages"/>). 0: stop as soon as the set fits.
    /// </summary>
    public int SettlePages { get; init; } = 128;
    /// <summary>
    /// Pre-copy: how many times the source may resume the guest right after its final freeze because, with the pages
    /// it wrote between the stop rule's last collection and the freeze, the set no longer passes the stop rule (too
    /// large for the target, or above <see cref="SettlePages"/> while auto-converge can still slow the guest; each
    /// recheck costs one brief pause, one more round and one throttle step; counted in the report's throttled time).
    /// 0: never.
    /// </summary>
    public int FreezeRechecks { get; init; } = 2;
    /// <summary>
    /// Pre-copy: when a round does not shrink the dirty set by a fifth, keep the guest frozen for a growing share
    /// of the time (30, 50, 70, 90, 99 %) until it converges (<see cref="GuestThrottle"/>). Off: a guest that writes
    /// as fast as pages travel ends with a large last round, inside the downtime.
    /// </summary>
    public bool AutoConverge { get; init; } = true;
    /// <summary>Auto-converge's run-then-pause cycle.</summary>
    public TimeSpan AutoConvergePeriod { get; init; } = GuestThrottle.DefaultPeriod;
    /// <summary>Pages per batch record (256 × 4 KiB = 1 MiB).</summary>
    public int BatchPages { get; init; } = 256;
    /// <summary>
    /// Pre-copy: a frozen last round of at most this many pages travels on the control stream, ahead of the state,
    /// sent by the migration's own task (see <see cref="SourceMigration"/>'s SendOnControlAsync). 0: always on the
    /// page streams.
    /// </summary>
    public int InlineLastRoundPages { get; init; } = 128;
    public TimeSpan FreezeTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan PeerTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Migration epoch sealed into the state (anti-rollback, confidential workloads).</summary>
    public ulong Epoch { get; init; }
    /// <summary>
    /// After commit, if the destination's acknowledgement is lost: asks the destination (out of band, e.g. its
    /// agent) whether the guest runs there. True = it runs; false = it does not and never will.
    /// </summary>
    public Func<Guid, CancellationToken, Task<DestinationAnswer>>? ConfirmDestinationRunning { get; init; }
    /// <summary>May the source resume if, after commit, the destination is known not to run the guest? (No for confidential workloads: that would be a rollback.)</summary>
    public bool ResumeAfterFailedCommit { get; init; } = true;
    /// <summary>
    /// Confidential workloads: runs the attestation handshake with the destination's runtime over the control
    /// stream, after the setup and before any page moves (the migration id and a channel that ferries opaque
    /// messages). It must key the enclave's record protector; throwing aborts the migration (the source resumes).
    /// </summary>
    public Func<Guid, IHandshakeChannel, CancellationToken, Task>? Handshake { get; init; }
}

/// <summary>
/// The source side of a migration: drives the strategy over the streams using only sealed records from the
/// enclave. Before commit, every failure unfreezes the guest on the source (it continues as if nothing happened).
/// </summary>
public sealed class SourceMigration
{
    private readonly EnclaveSource enclave;
    private readonly Func<IDirtyPageTracker>? trackerFactory;
    private readonly MigrationOptions options;
    private readonly IProgress<MigrationProgress>? progress;
    private readonly List<RoundReport> rounds = [];
    private FrameStream[] streams = [];
    private Guid migrationId;
    private long pagesSent;
    private long resent;
    private bool committed;
    /// <summary>After a failure past the commit, the destination's agent confirmed the guest runs there (or ran to its end).</summary>
    private bool destinationConfirmed;
    /// <summary>After a failed commit: why the destination could not be asked, or what it answered (for the error message).</summary>
    private string? afterCommitOutcome;
    /// <summary>When the guest started on the destination (Resumed arrived), or null.</summary>
    private long? resumedAtNanos;
    private Stopwatch? postCopyClock;
    private readonly TaskCompletionSource<Frame> ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<Frame> resumed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<Frame> complete = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<long[]> pageRequests = Channel.CreateUnbounded<long[]>();
    private long faults;
    private MigrationAbortedException? peerAbort;

    public SourceMigration(EnclaveSource enclave, Func<IDirtyPageTracker>? trackerFactory, MigrationOptions options, IProgress<MigrationProgress>? progress = null)
    {
        this.enclave = enclave;
        this.trackerFactory = trackerFactory;
        this.options = options;
        this.progress = progress;
    }

    private long BytesSent => streams.Sum(s => s.BytesWritten);

    /// <summary>Pre-copy's auto-converge, once the rounds started (null otherwise or when off).</summary>
    private GuestThrottle? throttle;

    /// <summary>Time the guest was kept frozen by throttles replaced after a recheck at the freeze, and by those rechecks' pauses.</summary>
    private TimeSpan throttledEarlier;

    /// <summary>Pre-copy: times the guest was resumed right after a freeze (see <see cref="MigrationOptions.FreezeRechecks"/>).</summary>
    private int freezeRechecks;

    /// <summary>Pre-copy: the (last) freeze kept a pause of auto-converge instead of letting the guest run first.</summary>
    private bool freezeKeptPause;

    private MigrationReport Report(FrozenGuestInfo freeze, long resumedAt, double postCopyMs, Stopwatch total) => new()
    {
        AutoConvergeShare = throttle?.Share ?? 0,
        ThrottledMs = (throttledEarlier + (throttle?.Frozen ?? TimeSpan.Zero)).TotalMilliseconds,
        FreezeRechecks = freezeRechecks,
        FreezeKeptThrottlePause = freezeKeptPause,
        MigrationId = migrationId.ToString(),
        Strategy = options.Strategy,
        Tracking = options.Tracking,
        Succeeded = true,
        MemoryBytes = enclave.MemoryBytes,
        TotalMs = total.Elapsed.TotalMilliseconds,
        DowntimeMs = (resumedAt - freeze.FrozenAt) / 1e6,
        FreezeLatencyMs = freeze.Latency.TotalMilliseconds,
        DowntimeParts = Parts(freeze.FrozenAt, resumedAt),
        BytesSent = BytesSent,
        PagesSent = pagesSent,
        ResentPages = resent,
        Rounds = rounds.Count,
        BandwidthMBps = BandwidthMBps(),
        RoundDetails = rounds,
        PostCopyFaults = Interlocked.Read(ref faults),
        PostCopyMs = postCopyMs,
    };

    public async Task<MigrationReport> RunAsync(IMigrationConnector connector, WorkloadSetup setupTemplate, ReadOnlyMemory<byte> module, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        migrationId = Guid.NewGuid();
        IDirtyPageTracker? tracker = null;
        Task<List<long>>? firstRound = null;
        FrozenGuestInfo? freeze = null;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task? controlReader = null;
        try
        {
            var raw = await connector.ConnectAsync(migrationId, options.Streams + 1, linked.Token).ConfigureAwait(false);
            streams = raw.Select(s => new FrameStream(s)).ToArray();
            for (var i = 0; i < streams.Length; i++) await streams[i].WriteAsync(MessageType.Hello, Messages.Hello(migrationId, i), linked.Token).ConfigureAwait(false);
            var setup = setupTemplate with
            {
                MigrationId = migrationId.ToString(),
                Strategy = options.Strategy,
                Tracking = options.Tracking,
                Streams = options.Streams + 1,
                MemoryBytes = enclave.MemoryBytes,
                ModuleBytes = module.Length,
            };
            var control = streams[0];
            await control.WriteAsync(MessageType.Setup, Messages.Setup(setup), linked.Token).ConfigureAwait(false);
            for (var off = 0; off < module.Length; off += 16 << 20)
            {
                await control.WriteAsync(MessageType.ModuleChunk, module.Slice(off, Math.Min(16 << 20, module.Length - off)), linked.Token).ConfigureAwait(false);
            }
            // Pre-copy and hybrid: start tracking and list round 0's pages (a scan of all memory, ~25 ms at 256 MiB)
            // while the destination sets up (and, for a confidential workload, while both attest).
            if (options.Strategy is Strategy.PreCopy or Strategy.Hybrid)
            {
                var t = tracker = trackerFactory?.Invoke() ?? throw new InvalidOperationException("pre-copy needs a page tracker");
                firstRound = Task.Run(() =>
                {
                    t.Start();
                    var all = new List<long>();
                    enclave.NonZeroPages(all);
                    return all;
                }, CancellationToken.None);
            }
            if (options.Handshake is { } handshake)
            {
                using var bounded = CancellationTokenSource.CreateLinkedTokenSource(linked.Token);
                bounded.CancelAfter(options.PeerTimeout);
                await handshake(migrationId, new FrameHandshakeChannel(control), bounded.Token).ConfigureAwait(false);
            }
            if (options.Epoch > 0 && enclave.Identity.Length > 0)
            {
                // Confidential: the destination may write its epoch record while the pages travel (a hint; the state decides).
                await control.WriteAsync(MessageType.EpochIntent, enclave.SealEpochIntent(options.Epoch), linked.Token).ConfigureAwait(false);
            }
            using (await control.ExpectAsync(MessageType.SetupAck, linked.Token).ConfigureAwait(false))
            {
            }
            controlReader = ReadControlAsync(linked.Token);

            var strategy = options.Strategy;
            int finalRound;
            byte[]? pending = null;
            // The pages sent while frozen (stop-and-copy, pre-copy), or pushed after the commit (post-copy, hybrid:
            // built from the pending bitmap only then, so the frozen guest does not wait for a list of every page).
            List<long>? final = null;
            var pendingCountHint = 0;
            if (strategy == Strategy.StopCopy)
            {
                freeze = await FreezeAsync(control, linked.Token).ConfigureAwait(false);
                final = [];
                enclave.NonZeroPages(final);
                collectedAt = Now();
                await SendRoundAsync(final, 0, guestRunning: false, linked.Token).ConfigureAwait(false);
                finalRound = 0;
            }
            else if (strategy == Strategy.PostCopy)
            {
                // Post-copy sends nothing before the freeze, so without this the first progress report (and the
                // first use of everything behind it: the event to the agent, the log line) would be "state", inside
                // the downtime. Reported while the guest still runs, it costs nothing there.
                progress?.Report(new MigrationProgress("scan", 0, 0, enclave.PageCount, BytesSent));
                var nonZero = new List<long>();
                if (trackerFactory is not null)
                {
                    // Find the non-zero pages while the guest still runs, tracking its writes meanwhile: the frozen
                    // guest then waits only for the pages written during the scan, not for a scan of all memory
                    // (which grows with memory size: ~100 ms per GiB).
                    tracker = trackerFactory();
                    tracker.Start();
                    enclave.NonZeroPages(nonZero);
                    pending = PageBitmap.Of(nonZero, enclave.PageCount);
                    freeze = await FreezeAsync(control, linked.Token).ConfigureAwait(false);
                    pending = PageBitmap.Grow(pending, enclave.PageCount); // the guest may have grown its memory meanwhile
                    pendingCountHint = nonZero.Count + (int)tracker.CollectLastInto(pending);
                }
                else
                {
                    freeze = await FreezeAsync(control, linked.Token).ConfigureAwait(false);
                    enclave.NonZeroPages(nonZero);
                    pending = PageBitmap.Of(nonZero, enclave.PageCount);
                    pendingCountHint = nonZero.Count;
                }
                collectedAt = Now();
                finalRound = 0;
            }
            else
            {
                if (tracker is null || firstRound is null) throw new InvalidOperationException("pre-copy needs a page tracker");
                var all = await firstRound.ConfigureAwait(false);
                var first = await SendRoundAsync(all, 0, guestRunning: true, linked.Token).ConfigureAwait(false);
                first = await AwaitAppliedAsync(first, controlReader, linked.Token).ConfigureAwait(false);
                var bandwidth = first.Milliseconds > 0 ? first.Bytes / first.Milliseconds : double.PositiveInfinity; // bytes per ms
                var round = 1;
                var dirty = new List<long>();
                var previous = long.MaxValue;
                var stalled = 0;

                // One round of pages sent while the guest runs, until the destination applied them; its end-to-end
                // rate becomes the bandwidth the stop rule uses (the latest round's, not the best so far: the last
                // round is small like the latest ones and meets the same load; the best, usually round 0's, promised
                // kvstore at 3 GiB a 12 ms last round that took 14-19 ms; docs/benchmarks.md).
                async Task RunningRoundAsync(List<long> pages)
                {
                    previous = pages.Count;
                    resent += pages.Count;
                    var r = await SendRoundAsync(pages, round, guestRunning: true, linked.Token).ConfigureAwait(false);
                    r = await AwaitAppliedAsync(r, controlReader, linked.Token).ConfigureAwait(false);
                    if (r.Milliseconds > 0) bandwidth = r.Bytes / r.Milliseconds;
                    round++;
                }

                // Would this many pages, sent at the latest round's end-to-end bandwidth, fit the downtime target?
                bool FitsTarget(int pages) => pages * (double)MigrationRecords.PageSize / bandwidth <= options.DowntimeTarget.TotalMilliseconds;

                // Pre-copy's rounds until the stop rule says freeze; true if it stopped because the set fits the
                // target (false: the round limit, or a set that stopped shrinking at the highest throttle share).
                async Task<bool> RoundsAsync()
                {
                    while (true)
                    {
                        dirty.Clear();
                        tracker.Collect(dirty);
                        if (round >= options.MaxRounds || stalled >= 3) return false;
                        var shrinking = dirty.Count <= previous * 0.8;
                        if (FitsTarget(dirty.Count))
                        {
                            // Fits the target. Stop once the set is small; while it is not, another round while the
                            // guest runs leaves less for the downtime as long as the set still shrinks by a fifth or
                            // auto-converge can still slow the guest (SettlePages).
                            if (dirty.Count <= options.SettlePages) return true;
                            if (!shrinking && throttle is not { CanRaise: true }) return true;
                        }
                        if (!shrinking && throttle is { CanRaise: true })
                        {
                            // Not converging (fast enough): slow the guest down before counting it as stalled.
                            throttle.Raise();
                            stalled = 0;
                        }
                        else
                        {
                            stalled = dirty.Count >= previous ? stalled + 1 : 0;
                        }
                        await RunningRoundAsync(dirty).ConfigureAwait(false);
                    }
                }

                byte[] union;
                if (strategy == Strategy.PreCopy)
                {
                    if (options.AutoConverge) throttle = new GuestThrottle(enclave, options.AutoConvergePeriod);
                    while (true)
                    {
                        var fitted = await RoundsAsync().ConfigureAwait(false);
                        var share = throttle?.Share ?? 0;
                        // A pause of auto-converge in progress becomes the freeze: the guest does not run (and write)
                        // between the stop rule's collection and the freeze; otherwise it runs until it reaches a
                        // safe point, and the recheck below finds what it wrote meanwhile.
                        freezeKeptPause = throttle is not null && await throttle.StopAsync(keepFrozen: true).ConfigureAwait(false);
                        freeze = await FreezeAsync(control, linked.Token, sendFrameHint: false).ConfigureAwait(false);
                        if (!fitted || freezeRechecks >= options.FreezeRechecks || round >= options.MaxRounds)
                        {
                            // Final. Pages left from the last estimate plus those written since: a bitmap, not a hash
                            // set and a sort (hybrid at 3 GiB has ~330,000 pages here: tens of milliseconds of downtime).
                            union = PageBitmap.Of(dirty, enclave.PageCount);
                            pendingCountHint = dirty.Count + (int)tracker.CollectLastInto(union);
                            break;
                        }
                        // The set that fitted was collected before the throttle stopped and the freeze was asked for;
                        // a guest that starts writing in between puts all it writes into the downtime (pagerank: 23,767
                        // pages after a set of at most 128, 86.6 ms; docs/benchmarks.md). Collect again (re-arming the
                        // tracker, so the rounds can go on) and, if the set no longer fits, resume the guest and go on.
                        var pausedAt = Stopwatch.GetTimestamp();
                        var since = new List<long>();
                        tracker.Collect(since);
                        union = PageBitmap.Of(dirty, enclave.PageCount);
                        pendingCountHint = dirty.Count + (int)PageBitmap.Add(union, since);
                        // The stop rule again, on the set as it is now: small, or fitting the target when auto-converge
                        // cannot slow the guest further. (Accepting any set that fits the target froze bfs with
                        // 1,000-1,400 pages, 7-14 ms of last pages, after a decision on at most 128.)
                        if (pendingCountHint <= options.SettlePages || (FitsTarget(pendingCountHint) && throttle is not { CanRaise: true }))
                        {
                            break; // the guest is frozen, so nothing more can be written
                        }
                        freezeRechecks++;
                        enclave.Unfreeze();
                        throttledEarlier += Stopwatch.GetElapsedTime(pausedAt);
                        if (throttle is not null)
                        {
                            // Auto-converge goes on where it was (a disposed throttle cannot be restarted).
                            throttledEarlier += throttle.Frozen;
                            // and one step further: the set grew after the decision, so the guest writes faster
                            // than the last round showed.
                            throttle = new GuestThrottle(enclave, options.AutoConvergePeriod);
                            throttle.RaiseTo(share);
                            throttle.Raise();
                        }
                        dirty = PageBitmap.Pages(union, pendingCountHint);
                        await RunningRoundAsync(dirty).ConfigureAwait(false);
                    }
                    await control.WriteAsync(MessageType.FrameHint, enclave.SealFrameHint(), linked.Token).ConfigureAwait(false);
                }
                else
                {
                    freeze = await FreezeAsync(control, linked.Token).ConfigureAwait(false);
                    union = PageBitmap.Of(dirty, enclave.PageCount);
                    pendingCountHint = dirty.Count + (int)tracker.CollectLastInto(union);
                }
                if (strategy == Strategy.Hybrid)
                {
                    pending = union;
                    collectedAt = Now();
                    finalRound = round;
                }
                else
                {
                    final = PageBitmap.Pages(union, pendingCountHint);
                    resent += final.Count;
                    collectedAt = Now();
                    if (final.Count <= options.InlineLastRoundPages) await SendOnControlAsync(final, round, linked.Token).ConfigureAwait(false);
                    else await SendRoundAsync(final, round, guestRunning: false, linked.Token, LastRoundBatchPages(final.Count)).ConfigureAwait(false);
                    finalRound = round;
                }
            }

            finalSentAt = Now();
            var state = enclave.SealState(finalRound, pending, options.Epoch);
            progress?.Report(new MigrationProgress("state", finalRound, pagesSent, pagesSent, BytesSent));
            await control.WriteAsync(MessageType.State, state, linked.Token).ConfigureAwait(false);
            stateSentAt = Now();
            using (var r = await WaitAsync(ready.Task, "Ready", linked.Token).ConfigureAwait(false))
            {
                // Only the destination enclave can say it holds the whole state; a forged Ready must not make us commit.
                enclave.OpenReady(r.Payload, options.Epoch);
            }
            readyAt = Now();

            // Commit point: from here on the guest never runs on the source again (unless the destination
            // provably never started it and resuming is allowed).
            committed = true;
            await control.WriteAsync(MessageType.Commit, enclave.SealCommit(options.Epoch), linked.Token).ConfigureAwait(false);
            commitSentAt = Now();
            long resumedAt;
            using (var r = await WaitAsync(resumed.Task, "Resumed", linked.Token).ConfigureAwait(false)) resumedAt = enclave.OpenResumed(r.Payload, options.Epoch);
            resumedAtNanos = resumedAt;

            double postCopyMs = 0;
            if (pending is not null)
            {
                postCopyClock = Stopwatch.StartNew();
                var push = PageBitmap.Pages(pending, pendingCountHint);
                if (strategy == Strategy.Hybrid) resent += push.Count;
                await PostCopyAsync(push, finalRound + 1, linked.Token).ConfigureAwait(false);
                postCopyMs = postCopyClock.Elapsed.TotalMilliseconds;
            }
            enclave.Retire();
            var report = Report(freeze!, resumedAt, postCopyMs, total);
            await linked.CancelAsync().ConfigureAwait(false);
            await CloseAsync().ConfigureAwait(false);
            return report;
        }
        catch (Exception e) when (e is not MigrationFailedException)
        {
            // A broken stream is often only the symptom: the destination refused something, said why on the control
            // stream (Abort) and closed everything. Give that reason to the operator (bounded wait for it).
            if (controlReader is not null && e is not MigrationAbortedException && Volatile.Read(ref peerAbort) is null)
            {
                await Task.WhenAny(controlReader, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None)).ConfigureAwait(false);
            }
            if (Volatile.Read(ref peerAbort) is { } aborted && e is not MigrationAbortedException) e = aborted;
            await linked.CancelAsync().ConfigureAwait(false);
            if (throttle is not null) await throttle.DisposeAsync().ConfigureAwait(false); // before deciding who runs
            var resumedHere = await HandleFailureAsync(e, ct).ConfigureAwait(false);
            await CloseAsync().ConfigureAwait(false);
            if (!resumedHere && destinationConfirmed && resumedAtNanos is { } ra && freeze is { } f)
            {
                // The guest started on the destination and its agent vouches that it runs there with every page it
                // needs (or already ran to its end, e.g. a program that finished right after arriving, cutting the
                // post-copy push short). The workload has moved: that is a successful migration, with a note.
                return Report(f, ra, postCopyClock?.Elapsed.TotalMilliseconds ?? 0, total) with
                {
                    Note = $"finished after the destination confirmed the guest runs there: {e.Message}",
                };
            }
            throw new MigrationFailedException(
                resumedHere
                    ? $"migration failed; the workload continues on the source: {e.Message}"
                    : $"migration failed after commit: {e.Message}" + (afterCommitOutcome is null ? "" : $"; {afterCommitOutcome}"),
                resumedHere, e);
        }
        finally
        {
            if (throttle is not null) await throttle.DisposeAsync().ConfigureAwait(false);
            if (firstRound is not null)
            {
                try
                {
                    await firstRound.ConfigureAwait(false); // not disposing the tracker while it starts
                }
                catch (Exception)
                {
                    // A tracker that cannot start fails the round that awaits it; here it is only cleaned up.
                }
            }
            tracker?.Dispose();
            if (controlReader is not null)
            {
                try
                {
                    await controlReader.ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Its failure, if any, was observed through the waits above.
                }
            }
        }
    }

    /// <summary>Source-side timestamps (Unix ns) of the steps inside the downtime: see <see cref="DowntimeBreakdown"/>.</summary>
    private long collectedAt, finalSentAt, stateSentAt, readyAt, commitSentAt;

    private static long Now() => GuestProgram.UnixNanosNow();

    private DowntimeBreakdown? Parts(long frozenAt, long resumedAt)
    {
        if (collectedAt == 0 || commitSentAt == 0) return null;
        static double Ms(long from, long to) => Math.Max(0, to - from) / 1e6;
        return new DowntimeBreakdown(Ms(frozenAt, collectedAt), Ms(collectedAt, finalSentAt), Ms(finalSentAt, stateSentAt),
            Ms(stateSentAt, readyAt), Ms(readyAt, resumedAt));
    }

    private double BandwidthMBps()
    {
        var running = rounds.Where(r => r.Milliseconds > 0).ToList();
        if (running.Count == 0) return 0;
        return running.Sum(r => r.Bytes) / running.Sum(r => r.Milliseconds) * 1000 / (1 << 20);
    }

    private sealed record FrozenGuestInfo(long FrozenAt, TimeSpan Latency);

    /// <summary>
    /// The migration's freeze: the guest stops at a safe point, and the shape of its call stack goes to the destination
    /// at once (<see cref="EnclaveSource.SealFrameHint"/>), so it can compile the resume code (if not done yet) while the
    /// rest travels. Pre-copy sends the hint itself (<paramref name="sendFrameHint"/> false) once the freeze is final:
    /// it may still resume the guest (see <see cref="MigrationOptions.FreezeRechecks"/>).
    /// </summary>
    private async Task<FrozenGuestInfo> FreezeAsync(FrameStream control, CancellationToken ct, bool sendFrameHint = true)
    {
        // A fresh generation-0 budget, so that what the frozen steps allocate (the state record, bitmaps) does not end
        // it inside the downtime; this collection pauses the guest as any other would, but it is still running.
        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        var task = enclave.FreezeAsync();
        if (await Task.WhenAny(task, Task.Delay(options.FreezeTimeout, ct)).ConfigureAwait(false) != task)
        {
            ct.ThrowIfCancellationRequested();
            throw new TimeoutException($"the guest did not reach a safe point within {options.FreezeTimeout.TotalSeconds:0} s");
        }
        var f = await task.ConfigureAwait(false);
        if (sendFrameHint) await control.WriteAsync(MessageType.FrameHint, enclave.SealFrameHint(), ct).ConfigureAwait(false);
        return new FrozenGuestInfo(f.FrozenAtUnixNanos, f.FreezeLatency);
    }

    /// <summary>The RoundApplied the source waits for (set before it asks), completed by the control reader.</summary>
    private RoundAck? roundAck;

    private sealed record RoundAck(int Round, TaskCompletionSource<Frame> Ack);

    /// <summary>
    /// Pre-copy, after a round was written: asks the destination to acknowledge it once applied, and waits. Until
    /// then its pages may still sit in socket buffers and the destination agent's relay (about a megabyte per
    /// stream); freezing before they drained made that drain part of the downtime. The round's time then runs
    /// until the pages are applied, so the bandwidth the convergence test uses is the end-to-end one.
    /// </summary>
    private async Task<RoundReport> AwaitAppliedAsync(RoundReport sent, Task controlReader, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var ack = new TaskCompletionSource<Frame>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref roundAck, new RoundAck(sent.Round, ack));
        await streams[0].WriteAsync(MessageType.RoundSent, Messages.RoundSent(sent.Round, enclave.BatchesSent), ct).ConfigureAwait(false);
        // The reader may have ended before the ack was registered: its failure is on `ready` as well.
        var done = await Task.WhenAny(ack.Task, controlReader, Task.Delay(options.PeerTimeout, ct)).ConfigureAwait(false);
        if (done == controlReader) await ready.Task.ConfigureAwait(false);
        if (done != ack.Task) throw new TimeoutException($"the destination did not acknowledge round {sent.Round} within {options.PeerTimeout.TotalSeconds:0} s");
        (await ack.Task.ConfigureAwait(false)).Dispose();
        var report = sent with { Milliseconds = sent.Milliseconds + sw.Elapsed.TotalMilliseconds };
        rounds[^1] = report;
        return report;
    }

    // One record buffer per page stream (about 1 MiB each), kept for the whole migration: the rounds of one
    // migration never overlap. A fresh buffer per round put its first-touch page faults into the frozen last round
    // (this VM traps each fresh 4 KiB page): 470 pages took 11 ms to send frozen, against 2-3 ms with reused buffers.
    private byte[]?[]? sendBuffers;

    /// <summary>
    /// Pre-copy's frozen last round when it is small (the usual case: tens of pages): in batches on the control
    /// stream, from this task, right before the state. The page streams' path costs a hand-off to a worker per
    /// stream, the destination's wait for every stream's last batch, and on a loaded host each of those waits for a
    /// core: measured 0.9–4 ms for 27 pages (at load 6) where the bytes themselves take microseconds. On the control
    /// stream the destination meets the batches in order before the state, and a dropped one shows as a gap in the
    /// stream's sequence numbers, as on any stream.
    /// </summary>
    private async Task SendOnControlAsync(List<long> pages, int round, CancellationToken ct)
    {
        const int pagesPerBatch = 32; // small records: the destination opens one while the next is sealed
        var sw = Stopwatch.StartNew();
        var before = BytesSent;
        var buffer = (sendBuffers ??= new byte[]?[options.Streams])[0] ??= new byte[enclave.MaxRecordBytes(options.BatchPages)];
        for (var i = 0; i < pages.Count; i += pagesPerBatch)
        {
            var count = Math.Min(pagesPerBatch, pages.Count - i);
            var n = enclave.SealBatch(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pages).Slice(i, count), round, 0, buffer);
            await streams[0].WriteAsync(MessageType.PageBatch, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            Interlocked.Add(ref pagesSent, count);
        }
        rounds.Add(new RoundReport(round, pages.Count, BytesSent - before, sw.Elapsed.TotalMilliseconds, GuestRunning: false));
        progress?.Report(new MigrationProgress("final", round, Interlocked.Read(ref pagesSent), pages.Count, BytesSent));
    }

    /// <summary>
    /// Batch size for pre-copy's frozen last round: small enough that every page stream carries a share, in at least
    /// two batches each. With full batches (1 MiB) a last round of a few hundred pages went out as one or two records,
    /// each copied (and sealed) whole before its first byte left and opened whole after its last arrived: nothing
    /// overlapped. Smaller batches pipeline that work over the streams and both ends. Not below 16 pages (64 KiB):
    /// each record has a fixed cost.
    /// </summary>
    private int LastRoundBatchPages(int pages) =>
        Math.Clamp((pages + 2 * options.Streams - 1) / (2 * options.Streams), Math.Min(16, options.BatchPages), options.BatchPages);

    /// <summary>Sends pages as batches spread over the page streams, in parallel (<paramref name="batchPages"/>: default <see cref="MigrationOptions.BatchPages"/>).</summary>
    private async Task<RoundReport> SendRoundAsync(List<long> pages, int round, bool guestRunning, CancellationToken ct, int batchPages = 0)
    {
        if (batchPages <= 0) batchPages = options.BatchPages;
        var sw = Stopwatch.StartNew();
        var before = BytesSent;
        var batches = Channel.CreateBounded<(int Start, int Count)>(options.Streams * 4);
        var workers = new Task[options.Streams];
        // A worker that fails (its stream broke, the destination went away) stops the round: otherwise the producer
        // would wait forever for room in the channel nobody reads any more.
        using var roundFailed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var buffers = sendBuffers ??= new byte[]?[options.Streams];
        for (var s = 0; s < options.Streams; s++)
        {
            var stream = s + 1;
            workers[s] = Task.Run(async () =>
            {
                try
                {
                    var buffer = buffers[stream - 1] ??= new byte[enclave.MaxRecordBytes(options.BatchPages)];
                    await foreach (var (start, count) in batches.Reader.ReadAllAsync(roundFailed.Token).ConfigureAwait(false))
                    {
                        var n = enclave.SealBatch(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pages).Slice(start, count), round, stream, buffer);
                        await streams[stream].WriteAsync(MessageType.PageBatch, buffer.AsMemory(0, n), roundFailed.Token).ConfigureAwait(false);
                        Interlocked.Add(ref pagesSent, count);
                    }
                }
                catch (OperationCanceledException) when (roundFailed.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    // Another worker failed; its exception reports why.
                }
                catch
                {
                    await roundFailed.CancelAsync().ConfigureAwait(false);
                    throw;
                }
            }, ct);
        }
        try
        {
            for (var i = 0; i < pages.Count; i += batchPages)
            {
                await batches.Writer.WriteAsync((i, Math.Min(batchPages, pages.Count - i)), roundFailed.Token).ConfigureAwait(false);
                progress?.Report(new MigrationProgress(guestRunning ? "pre-copy" : "final", round, Interlocked.Read(ref pagesSent), pages.Count, BytesSent));
            }
        }
        catch (OperationCanceledException) when (roundFailed.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // A worker failed: awaiting the workers below throws its exception.
        }
        finally
        {
            batches.Writer.TryComplete();
        }
        await Task.WhenAll(workers).ConfigureAwait(false);
        var report = new RoundReport(round, pages.Count, BytesSent - before, sw.Elapsed.TotalMilliseconds, guestRunning);
        rounds.Add(report);
        progress?.Report(new MigrationProgress(guestRunning ? "pre-copy" : "final", round, Interlocked.Read(ref pagesSent), pages.Count, BytesSent));
        return report;
    }

    /// <summary>
    /// Post-copy: the guest already runs on the destination. Push every pending page in order over the page
    /// streams while answering the destination's requests first, on the control stream.
    /// </summary>
    private async Task PostCopyAsync(List<long> pendingPages, int round, CancellationToken ct)
    {
        var urgent = Task.Run(async () =>
        {
            var buffer = new byte[enclave.MaxRecordBytes(options.BatchPages)];
            await foreach (var request in pageRequests.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                Interlocked.Increment(ref faults);
                for (var i = 0; i < request.Length; i += options.BatchPages)
                {
                    var slice = request.AsSpan(i, Math.Min(options.BatchPages, request.Length - i));
                    var n = enclave.SealBatch(slice, round, 0, buffer);
                    await streams[0].WriteAsync(MessageType.PageBatch, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                }
            }
        }, ct);
        await SendRoundAsync(pendingPages, round, guestRunning: false, ct).ConfigureAwait(false);
        await streams[0].WriteAsync(MessageType.PostCopyDone, Messages.Counts(enclave.BatchesSent), ct).ConfigureAwait(false);
        using (await WaitAsync(complete.Task, "Complete", ct).ConfigureAwait(false))
        {
        }
        pageRequests.Writer.TryComplete();
        try
        {
            await urgent.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Every page has arrived (Complete); the destination may already have closed the streams.
        }
    }

    /// <summary>Dispatches what the destination sends on the control stream.</summary>
    private async Task ReadControlAsync(CancellationToken ct)
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var f = await streams[0].ReadAsync(ct).ConfigureAwait(false);
                if (f is null)
                {
                    failure = new ProtocolException("the destination closed the control stream");
                    break;
                }
                switch (f.Type)
                {
                    case MessageType.Ready: ready.TrySetResult(f); break;
                    case MessageType.Resumed: resumed.TrySetResult(f); break;
                    case MessageType.Complete: complete.TrySetResult(f); break;
                    case MessageType.RoundApplied:
                        {
                            var round = Messages.ParseInt64(f.Payload);
                            if (Volatile.Read(ref roundAck) is { } pending && pending.Round == round && pending.Ack.TrySetResult(f)) break;
                            f.Dispose(); // not the round asked about (late or unsolicited): pacing only, ignore
                            break;
                        }
                    case MessageType.PageRequest:
                        using (f) pageRequests.Writer.TryWrite(Messages.ParsePages(f.Payload));
                        break;
                    case MessageType.Abort:
                        using (f) failure = new MigrationAbortedException(System.Text.Encoding.UTF8.GetString(f.Payload));
                        Volatile.Write(ref peerAbort, (MigrationAbortedException)failure);
                        break;
                    default:
                        using (f) failure = new ProtocolException($"unexpected {f.Type} on the control stream");
                        break;
                }
                if (failure is not null) break;
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        failure ??= new ProtocolException("control stream closed");
        ready.TrySetException(failure);
        Volatile.Read(ref roundAck)?.Ack.TrySetException(failure);
        resumed.TrySetException(failure);
        complete.TrySetException(failure);
        pageRequests.Writer.TryComplete(failure);
    }

    private async Task<Frame> WaitAsync(Task<Frame> task, string what, CancellationToken ct)
    {
        var done = await Task.WhenAny(task, Task.Delay(options.PeerTimeout, ct)).ConfigureAwait(false);
        if (done != task) throw new TimeoutException($"no {what} from the destination within {options.PeerTimeout.TotalSeconds:0} s");
        return await task.ConfigureAwait(false);
    }

    /// <summary>Returns true if the guest runs on the source again.</summary>
    private async Task<bool> HandleFailureAsync(Exception e, CancellationToken ct)
    {
        if (!committed)
        {
            try
            {
                if (streams.Length > 0)
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await streams[0].WriteAsync(MessageType.Abort, Messages.Text(e.Message), cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // Best effort: the destination discards an incomplete migration on its own.
            }
            // Not only when the migration froze it: a pause of auto-converge handed over as the freeze counts too
            // (Unfreeze does nothing to a running guest).
            enclave.Unfreeze();
            return true;
        }
        // After commit: the destination may or may not run the guest. Ask out of band before deciding.
        var runsThere = true;
        DestinationAnswer? answer = null;
        if (options.ConfirmDestinationRunning is { } confirm)
        {
            try
            {
                answer = await confirm(migrationId, ct).ConfigureAwait(false);
                runsThere = answer.Running;
                destinationConfirmed = runsThere;
                afterCommitOutcome = runsThere ? "the destination says the guest runs there" : "the destination says the guest does not run there";
            }
            catch (Exception x)
            {
                runsThere = true; // unknown: never risk two copies
                afterCommitOutcome = $"the destination could not say whether the guest runs there ({x.GetType().Name}: {x.Message})";
            }
        }
        if (!runsThere && options.ResumeAfterFailedCommit)
        {
            enclave.Unfreeze();
            return true;
        }
        if (!runsThere && answer?.DiscardProof is { Length: > 0 } proof)
        {
            // The agent's word is not enough where resuming could fork the workload; the destination enclave's own
            // sealed statement that it threw the state away (and so can never run it) is.
            try
            {
                enclave.OpenDiscarded(proof, options.Epoch);
                enclave.Unfreeze();
                return true;
            }
            catch (MigrationIntegrityException)
            {
                // Not authentic: never risk two copies.
            }
        }
        // It runs there, or it cannot run anywhere without a rollback: either way never here again.
        enclave.Retire();
        return false;
    }

    private async Task CloseAsync()
    {
        foreach (var s in streams)
        {
            try
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
            }
        }
    }
}

/// <summary>
/// What the destination's side says after a commit whose outcome the source did not learn: whether the guest runs
/// there, and, if it does not, the destination enclave's sealed proof that it discarded the state (confidential
/// migrations; <see cref="MigrationRecordKind.Discarded"/>).
/// </summary>
public sealed record DestinationAnswer(bool Running, byte[]? DiscardProof = null);
