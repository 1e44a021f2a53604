using System.Net;
using System.Security.Cryptography;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Enclave.Tracking;
using Ferry.Migration.Protocol;
using Ferry.Migration.Strategies;
using Ferry.Migration.Transport;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Migration.Tests;

public class MigrationTests
{
    private static readonly byte[] WriterBytes = Wat.ToWasm(Programs.Writer);

    private static long Reference()
    {
        var env = new GateEnvironment(open: true);
        using var program = GuestProgram.Create(Wat.Load(WriterBytes), env, CompileOptions.Default, InstanceOptions.Default);
        program.Start();
        Assert.Equal(GuestEndKind.Exited, program.Completion.Result.Kind);
        return env.Done.Task.Result;
    }

    /// <summary>Runs <paramref name="bytes"/> uninterrupted in this process and returns the checksum it reports (env.done).</summary>
    private static async Task<long> ReferenceAsync(byte[] bytes, TimeSpan timeout)
    {
        var env = new GateEnvironment(open: true);
        using (var reference = GuestProgram.Create(Wat.Load(bytes), env, CompileOptions.Default, InstanceOptions.Default))
        {
            reference.Start();
            Assert.Equal(GuestEndKind.Exited, (await reference.Completion.WaitAsync(timeout)).Kind);
        }
        return await env.Done.Task.WaitAsync(TimeSpan.FromSeconds(5));
    }

    private static WorkloadSetup Setup() => new()
    {
        MigrationId = "",
        WorkloadId = "w1",
        Name = "writer",
        ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(WriterBytes)),
        ModuleBytes = WriterBytes.Length,
        Strategy = Strategy.StopCopy,
        Tracking = TrackingMethod.Compiler,
        Streams = 0,
        MemoryBytes = 0,
    };

    /// <summary>The writer guest on the source, started and waiting at its first gate (where the tests migrate it).</summary>
    private static Task<GuestProgram> StartWriterAtGateAsync(GateEnvironment env, bool compilerTracking) =>
        StartAtGateAsync(WriterBytes, env, compilerTracking);

    /// <summary>A guest on the source, started and waiting at its first gate.</summary>
    private static async Task<GuestProgram> StartAtGateAsync(byte[] module, GateEnvironment env, bool compilerTracking)
    {
        var program = GuestProgram.Create(Wat.Load(module), env, CompileOptions.Default with { DirtyTracking = compilerTracking }, InstanceOptions.Default);
        try
        {
            program.Start();
            await Task.WhenAny(env.Waiting.Task, program.Completion).WaitAsync(TimeSpan.FromSeconds(30));
            if (program.Completion.IsCompleted) Assert.Fail((await program.Completion).ToString());
            return program;
        }
        catch
        {
            program.Dispose();
            throw;
        }
    }

    private sealed class Endpoints : IDisposable
    {
        public readonly TcpStreamListener Listener = new(IPAddress.Loopback);
        public GateEnvironment? DestinationEnv;

        public DestinationMigration Destination() => new(CreateEnclave);

        public EnclaveDestination CreateEnclave(WorkloadSetup setup, ReadOnlyMemory<byte> module)
        {
            var postCopy = setup.Strategy is Strategy.PostCopy or Strategy.Hybrid;
            var kernel = postCopy && setup.Tracking == TrackingMethod.Kernel;
            return new EnclaveDestination(Wat.Load(module.ToArray()),
                CompileOptions.Default with { PresenceChecks = postCopy && !kernel, FullyInterruptible = kernel }, InstanceOptions.Default,
                _ => DestinationEnv = new GateEnvironment(open: true), new PlainRecordProtector(), setup.Streams,
                kernelPostCopy: kernel);
        }

        public void Dispose() => Listener.Dispose();
    }

    [Fact]
    public void Page_bitmaps_round_trip_as_ascending_unique_pages()
    {
        var rng = new Random(7);
        foreach (var pageCount in new long[] { 0, 1, 63, 64, 65, 1000, 262_147 })
        {
            var pages = new List<long>();
            for (var i = 0; i < pageCount / 3 + 1 && pageCount > 0; i++) pages.Add(rng.NextInt64(pageCount));
            if (pageCount > 0) pages.Add(pageCount - 1);
            var expected = pages.Distinct().Order().ToList();
            Assert.Equal(expected, PageBitmap.Pages(PageBitmap.Of(pages, pageCount)));
        }
    }

    [Theory]
    [InlineData(Strategy.StopCopy, TrackingMethod.Compiler)]
    [InlineData(Strategy.PreCopy, TrackingMethod.Compiler)]
    [InlineData(Strategy.PostCopy, TrackingMethod.Compiler)]
    [InlineData(Strategy.Hybrid, TrackingMethod.Compiler)]
    [InlineData(Strategy.PreCopy, TrackingMethod.Kernel)]
    [InlineData(Strategy.PostCopy, TrackingMethod.Kernel)]
    [InlineData(Strategy.Hybrid, TrackingMethod.Kernel)]
    // Pre-copy's last round on the control stream whatever its size, and never on it.
    [InlineData(Strategy.PreCopy, TrackingMethod.Compiler, int.MaxValue)]
    [InlineData(Strategy.PreCopy, TrackingMethod.Compiler, 0)]
    [InlineData(Strategy.PreCopy, TrackingMethod.Kernel, int.MaxValue)]
    public async Task Migrated_guest_finishes_with_the_uninterrupted_result(Strategy strategy, TrackingMethod tracking, int inlineLastRound = 128)
    {
        var expected = Reference();
        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: false);
        using var program = await StartWriterAtGateAsync(sourceEnv, compilerTracking: tracking == TrackingMethod.Compiler);

        var options = new MigrationOptions { Strategy = strategy, Tracking = tracking, Streams = 3, InlineLastRoundPages = inlineLastRound };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => tracking == TrackingMethod.Compiler ? new CompilerDirtyTracker(program.Instance.State) : new KernelDirtyTracker(program.Instance.Memory!), options);
        var destTask = Task.Run(async () => await ends.Destination().RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var run = source.RunAsync(new TcpConnector(ends.Listener.Endpoint), Setup(), WriterBytes, default);
        sourceEnv.Gate.Set(); // the guest writes memory while pages are being copied
        MigrationReport report;
        try
        {
            report = await run.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (MigrationFailedException e)
        {
            var d = await destTask.WaitAsync(TimeSpan.FromSeconds(30));
            try
            {
                await d.PostCopy.WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception)
            {
            }
            var why = d.PostCopy.IsFaulted ? d.PostCopy.Exception!.ToString() : $"destination post-copy status {d.PostCopy.Status}";
            throw new Xunit.Sdk.XunitException($"{e.Message}\n--- destination: {why}");
        }
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));
        await dest.PostCopy.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(report.Succeeded);
        Assert.True(report.DowntimeMs > 0);
        if (strategy == Strategy.PreCopy && report.RoundDetails[^1].Pages > 0)
        {
            // Where the frozen last round travelled: batches on stream 0 (the control stream) or none there.
            var onControl = dest.Enclave.BatchesReceived[0];
            if (inlineLastRound == int.MaxValue) Assert.True(onControl > 0, "the last round did not travel on the control stream");
            if (inlineLastRound == 0) Assert.Equal(0, onControl);
        }
        Assert.Equal(GuestEndKind.Retired, (await program.Completion.WaitAsync(TimeSpan.FromSeconds(30))).Kind);
        var end = await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        Assert.Equal(expected, await ends.DestinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(sourceEnv.Done.Task.IsCompleted);
    }

    /// <summary>
    /// Kernel post-copy registers the destination memory with userfaultfd at setup, at the size the source announced.
    /// A guest that grows its memory after that (here: between the setup and the freeze, deterministically: the
    /// destination lets the source guest past gate 1, where it grows from 4 to 8 MiB, and waits until it is at gate 2)
    /// must still arrive whole: the destination registers the grown memory again when the state arrives.
    /// </summary>
    [Theory]
    [InlineData(Strategy.PostCopy)]
    [InlineData(Strategy.Hybrid)]
    public async Task Kernel_postcopy_covers_memory_grown_after_the_setup(Strategy strategy)
    {
        var bytes = Wat.ToWasm(Programs.Grower);
        var expected = await ReferenceAsync(bytes, TimeSpan.FromSeconds(30));

        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: false);
        using var program = await StartAtGateAsync(bytes, sourceEnv, compilerTracking: false);
        var options = new MigrationOptions { Strategy = strategy, Tracking = TrackingMethod.Kernel, Streams = 2 };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => new KernelDirtyTracker(program.Instance.Memory!), options);
        var destination = new DestinationMigration((setup, module) =>
        {
            Assert.Equal(4UL << 20, setup.MemoryBytes);
            var enclave = ends.CreateEnclave(setup, module);
            sourceEnv.Gate.Set();
            sourceEnv.WaitingAtSecond.Task.Wait(TimeSpan.FromSeconds(30));
            return enclave;
        });
        var destTask = Task.Run(async () => await destination.RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var report = await source.RunAsync(new TcpConnector(ends.Listener.Endpoint), Setup() with { ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)), ModuleBytes = bytes.Length }, bytes, default)
            .WaitAsync(TimeSpan.FromSeconds(60));
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));
        await dest.PostCopy.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(report.Succeeded, report.Error);
        Assert.Equal(8UL << 20, report.MemoryBytes);
        Assert.Equal(2048, dest.Enclave.KernelPostCopy!.RegisteredPages); // registered again at the grown size
        var end = await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        Assert.Equal(expected, await ends.DestinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>
    /// A pre-copy longer than the destination's peer timeout, during which the source says nothing on the control
    /// stream while pages flow on the page streams, must not be taken for a lost source (it was, before only the
    /// control stream counted: btree at 1 GiB, 30 rounds). The page streams are slowed (100 ms per batch of 4 pages,
    /// 3 streams) so that round 0 lasts about 8 s against a 2 s peer timeout; every gap between batches stays far
    /// below it.
    /// </summary>
    [Fact]
    public async Task A_precopy_longer_than_the_peer_timeout_is_not_a_lost_source_while_pages_flow()
    {
        // Long enough for a cold start's pauses (the JIT compiling the send and apply paths), far shorter than round 0.
        var peerTimeout = TimeSpan.FromSeconds(2);
        var expected = Reference();
        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: false);
        using var program = await StartWriterAtGateAsync(sourceEnv, compilerTracking: true);

        var options = new MigrationOptions { Strategy = Strategy.PreCopy, Tracking = TrackingMethod.Compiler, Streams = 3, BatchPages = 4, MaxRounds = 3 };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => new CompilerDirtyTracker(program.Instance.State), options);
        var destination = new DestinationMigration(ends.CreateEnclave, peerTimeout: peerTimeout);
        var destTask = Task.Run(async () => await destination.RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var connector = new SlowPageStreams(new TcpConnector(ends.Listener.Endpoint), TimeSpan.FromMilliseconds(100));
        var run = source.RunAsync(connector, Setup(), WriterBytes, default);
        sourceEnv.Gate.Set();
        var report = await run.WaitAsync(TimeSpan.FromSeconds(60));
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(report.Succeeded, report.Error);
        Assert.True(report.TotalMs > 2 * peerTimeout.TotalMilliseconds, $"the migration took only {report.TotalMs:F0} ms: the scenario did not happen");
        var end = await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        Assert.Equal(expected, await ends.DestinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>
    /// Freezing again right after an unfreeze (auto-converge does it every few milliseconds) must wait for a new
    /// freeze: while the guest thread had not yet woken from the previous one, the program used to answer "frozen"
    /// at once, and the unfreeze that followed failed with "the program is not frozen" once the thread went on.
    /// Whichever way each iteration interleaves, every freeze must be real and the result the uninterrupted one.
    /// </summary>
    [Fact]
    public async Task A_freeze_right_after_an_unfreeze_is_a_new_freeze()
    {
        var bytes = Wat.ToWasm(Programs.Spinner(100_000_000));
        var referenceEnv = new GateEnvironment(open: true);
        using (var reference = GuestProgram.Create(Wat.Load(bytes), referenceEnv, CompileOptions.Default, InstanceOptions.Default))
        {
            reference.Start();
            await reference.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        }
        var env = new GateEnvironment(open: true);
        using var program = GuestProgram.Create(Wat.Load(bytes), env, CompileOptions.Default, InstanceOptions.Default);
        program.Start();
        var freezes = 0;
        while (freezes < 300)
        {
            try
            {
                await program.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (GuestNotRunningException)
            {
                break; // it ended meanwhile
            }
            program.Unfreeze();
            freezes++;
        }
        var end = await program.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        Assert.True(freezes > 0);
        Assert.Equal(await referenceEnv.Done.Task, await env.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>Spinner iterations: a few seconds of stores on this machine, several times the migration below.</summary>
    private const int SpinnerIterations = 1_500_000_000;

    /// <summary>
    /// Auto-converge: a guest that dirties all of its memory in every round never lets pre-copy converge. With
    /// auto-converge the source throttles it step by step up to 99 % of the time frozen before it counts rounds as
    /// stalled; the guest is frozen and resumed many times meanwhile and still ends with the uninterrupted result.
    /// Without it, the guest is never throttled. Page streams are slowed (5 ms per write) so that every
    /// round (1,024 pages: 4 batches on 2 streams) lasts several throttle cycles (5 ms here).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Auto_converge_throttles_a_guest_whose_rounds_do_not_shrink(bool autoConverge)
    {
        var report = await MigrateSpinnerAsync(autoConverge, TimeSpan.FromTicks(1), maxRounds: 12);
        if (autoConverge)
        {
            Assert.Equal(0.99, report.AutoConvergeShare, 3);
            Assert.True(report.ThrottledMs > 0, "the guest was never frozen by the throttle");
        }
        else
        {
            Assert.Equal(0, report.AutoConvergeShare);
            Assert.Equal(0, report.ThrottledMs);
        }
    }

    /// <summary>
    /// A dirty set that fits the downtime target (here: any set) but is larger than <see cref="MigrationOptions.SettlePages"/>
    /// and no longer shrinks is not frozen while auto-converge can still slow the guest: the source raises the
    /// throttle to its highest share first, round by round, and only then freezes. Without auto-converge it freezes
    /// as soon as the set stops shrinking.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_set_that_fits_but_is_not_small_is_frozen_only_after_auto_converge_slowed_the_guest(bool autoConverge)
    {
        var report = await MigrateSpinnerAsync(autoConverge, TimeSpan.FromHours(1), maxRounds: 30);
        Assert.Equal(autoConverge ? 0.99 : 0, report.AutoConvergeShare, 3);
        // Round 0, round 1 (the set shrank from everything), one round per throttle step (30, 50, 70, 90, 99 %), then
        // the frozen last round; without auto-converge the set stops shrinking at round 2, which is frozen at once.
        Assert.Equal(autoConverge ? 8 : 3, report.Rounds);
    }

    /// <summary>
    /// The stop rule decides on a set collected while the guest still runs; a guest that starts writing between that
    /// collection and the freeze (here: 1,024 pages, written by env.quiet when the freeze is requested) would put all
    /// of it into the downtime. With rechecks the source collects again at the freeze, finds a set that no longer fits,
    /// resumes the guest and sends it as one more running round; the final round is then empty. Without, the 1,024
    /// pages travel frozen. The destination ends with the uninterrupted result either way. With
    /// <paramref name="fitsTarget"/> the 1,024 pages fit the downtime target and only the stop rule's other half —
    /// more than <see cref="MigrationOptions.SettlePages"/> while auto-converge could still slow the guest — sends
    /// them while the guest runs.
    /// </summary>
    [Theory]
    [InlineData(0, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    public async Task Pages_written_between_the_stop_decision_and_the_freeze_travel_before_it(int rechecks, bool fitsTarget)
    {
        var bytes = Wat.ToWasm(Programs.QuietFiller);
        var expected = await ReferenceAsync(bytes, TimeSpan.FromSeconds(60));

        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: true) { QuietUntilFreeze = true };
        using var program = GuestProgram.Create(Wat.Load(bytes), sourceEnv, CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        await sourceEnv.QuietEntered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var options = new MigrationOptions
        {
            Strategy = Strategy.PreCopy,
            Tracking = TrackingMethod.Compiler,
            Streams = 2,
            DowntimeTarget = fitsTarget ? TimeSpan.FromSeconds(30) : TimeSpan.FromTicks(1), // every set, or only an empty one
            AutoConverge = fitsTarget,
            SettlePages = 128,
            FreezeRechecks = rechecks,
        };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => new CompilerDirtyTracker(program.Instance.State), options);
        var destTask = Task.Run(async () => await ends.Destination().RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var report = await source.RunAsync(new TcpConnector(ends.Listener.Endpoint),
            Setup() with { ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)), ModuleBytes = bytes.Length }, bytes, default)
            .WaitAsync(TimeSpan.FromSeconds(60));
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(report.Succeeded, report.Error);
        var last = report.RoundDetails[^1];
        Assert.False(last.GuestRunning);
        if (rechecks == 0)
        {
            Assert.Equal(1024, last.Pages);
            Assert.Equal(0, report.FreezeRechecks);
        }
        else
        {
            Assert.Equal(0, last.Pages);
            Assert.Equal(1, report.FreezeRechecks);
            Assert.Contains(report.RoundDetails, r => r.GuestRunning && r.Pages == 1024);
        }
        Assert.Equal(GuestEndKind.Exited, (await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(60))).Kind);
        Assert.Equal(expected, await ends.DestinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>
    /// Pre-copies the spinner (every round dirties all its 1,024 pages) with slowed page streams (5 ms per write) so
    /// that every round lasts several throttle cycles (5 ms here); checks the destination ends with the result of an
    /// uninterrupted run.
    /// </summary>
    private async Task<MigrationReport> MigrateSpinnerAsync(bool autoConverge, TimeSpan downtimeTarget, int maxRounds)
    {
        var bytes = Wat.ToWasm(Programs.Spinner(SpinnerIterations));
        var expected = await ReferenceAsync(bytes, TimeSpan.FromSeconds(120));

        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: false);
        using var program = await StartAtGateAsync(bytes, sourceEnv, compilerTracking: true);
        var options = new MigrationOptions
        {
            Strategy = Strategy.PreCopy,
            Tracking = TrackingMethod.Compiler,
            Streams = 2,
            BatchPages = 256,
            DowntimeTarget = downtimeTarget,
            MaxRounds = maxRounds,
            AutoConverge = autoConverge,
            AutoConvergePeriod = TimeSpan.FromMilliseconds(5),
        };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => new CompilerDirtyTracker(program.Instance.State), options);
        var destTask = Task.Run(async () => await ends.Destination().RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var run = source.RunAsync(new SlowPageStreams(new TcpConnector(ends.Listener.Endpoint), TimeSpan.FromMilliseconds(5)),
            Setup() with { ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)), ModuleBytes = bytes.Length }, bytes, default);
        sourceEnv.Gate.Set();
        var report = await run.WaitAsync(TimeSpan.FromSeconds(120));
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(report.Succeeded, report.Error);
        var end = await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        Assert.Equal(expected, await ends.DestinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        return report;
    }

    /// <summary>
    /// The source freezes a pre-copy guest only after the destination acknowledged the last round as applied
    /// (RoundApplied). A destination whose acknowledgements never arrive must not stall the source for ever, nor
    /// make it freeze anyway: the migration times out before any freeze and the guest goes on undisturbed.
    /// </summary>
    [Fact]
    public async Task A_precopy_round_never_acknowledged_times_out_and_the_source_continues()
    {
        var expected = Reference();
        using var ends = new Endpoints();
        var sourceEnv = new GateEnvironment(open: false);
        using var program = await StartWriterAtGateAsync(sourceEnv, compilerTracking: true);

        var options = new MigrationOptions { Strategy = Strategy.PreCopy, Tracking = TrackingMethod.Compiler, Streams = 2, PeerTimeout = TimeSpan.FromSeconds(2) };
        var source = new SourceMigration(new EnclaveSource(program, new PlainRecordProtector(), options.Streams + 1),
            () => new CompilerDirtyTracker(program.Instance.State), options);
        var destTask = Task.Run(async () => await ends.Destination().RunAsync(await ends.Listener.AcceptAsync(options.Streams + 1, default), default));
        var run = source.RunAsync(new DroppingControlReplies(new TcpConnector(ends.Listener.Endpoint), MessageType.RoundApplied), Setup(), WriterBytes, default);

        var failure = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.True(failure.SourceResumed, failure.Message);
        Assert.Contains("acknowledge round 0", failure.Message, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<Exception>(() => destTask.WaitAsync(TimeSpan.FromSeconds(30)));

        sourceEnv.Gate.Set();
        sourceEnv.SecondGate.Set();
        Assert.Equal(GuestEndKind.Exited, (await program.Completion.WaitAsync(TimeSpan.FromSeconds(60))).Kind);
        Assert.Equal(expected, await sourceEnv.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>Connects as the inner connector does, but frames of one type never reach the source on the control stream.</summary>
    private sealed class DroppingControlReplies(IMigrationConnector inner, MessageType dropped) : IMigrationConnector
    {
        public async Task<Stream[]> ConnectAsync(Guid migrationId, int streams, CancellationToken ct)
        {
            var connected = await inner.ConnectAsync(migrationId, streams, ct);
            connected[0] = new FrameFilteringReads(connected[0], dropped);
            return connected;
        }
    }

    /// <summary>Reads whole frames ([u32 length][u16 type][u16 flags][payload]) from the inner stream and passes on all but one type.</summary>
    private sealed class FrameFilteringReads(Stream inner, MessageType dropped) : PassThroughStream(inner)
    {
        private byte[] pending = [];
        private int offset;

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            while (offset == pending.Length)
            {
                var header = new byte[FrameStream.HeaderBytes];
                if (await Inner.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, ct) < header.Length) return 0;
                var frame = new byte[header.Length + System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(header)];
                header.CopyTo(frame, 0);
                await Inner.ReadExactlyAsync(frame.AsMemory(header.Length), ct);
                if ((MessageType)System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(4)) == dropped) continue;
                (pending, offset) = (frame, 0);
            }
            var n = Math.Min(buffer.Length, pending.Length - offset);
            pending.AsMemory(offset, n).CopyTo(buffer);
            offset += n;
            return n;
        }
    }

    /// <summary>Connects as the inner connector does, but every write on a page stream (not the control stream) waits first.</summary>
    private sealed class SlowPageStreams(IMigrationConnector inner, TimeSpan delayPerWrite) : IMigrationConnector
    {
        public async Task<Stream[]> ConnectAsync(Guid migrationId, int streams, CancellationToken ct)
        {
            var connected = await inner.ConnectAsync(migrationId, streams, ct);
            for (var i = 1; i < connected.Length; i++) connected[i] = new SlowWrites(connected[i], delayPerWrite);
            return connected;
        }
    }

    private sealed class SlowWrites(Stream inner, TimeSpan delay) : PassThroughStream(inner)
    {
        public override void Write(byte[] buffer, int offset, int count)
        {
            Thread.Sleep(delay);
            Inner.Write(buffer, offset, count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            await Task.Delay(delay, ct);
            await Inner.WriteAsync(buffer, ct);
        }
    }
}
