using System.Net;
using System.Security.Cryptography;
using Ferry.Enclave.Confidential;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration.Protocol;
using Ferry.Migration.Strategies;
using Ferry.Migration.Transport;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Migration.Tests;

/// <summary>
/// <see cref="SessionRecordProtector"/> keyed from a real attested <see cref="MigrationSession"/> (software backend,
/// two platform keys in temporary dirs, one trust file), alone and driving a whole migration over loopback TCP.
/// </summary>
public sealed class SealedMigrationTests : IDisposable
{
    private static readonly byte[] WriterBytes = Wat.ToWasm(Programs.Writer);
    private readonly string root = Directory.CreateTempSubdirectory("ferry-smt-").FullName;
    private readonly SoftwareTeeBackend alpha;
    private readonly SoftwareTeeBackend beta;
    private readonly TrustStore trust;
    private readonly byte[] measurement = SHA256.HashData("sealed migration tests"u8);

    public SealedMigrationTests()
    {
        alpha = SoftwareTeeBackend.OpenOrCreate(Path.Combine(root, "a"));
        beta = SoftwareTeeBackend.OpenOrCreate(Path.Combine(root, "b"));
        trust = TrustStore.Create([alpha.TrustEntry("alpha"), beta.TrustEntry("beta")]);
    }

    public void Dispose()
    {
        alpha.Dispose();
        beta.Dispose();
        Directory.Delete(root, recursive: true);
    }

    private (SessionRecordProtector Source, SessionRecordProtector Destination) KeyedPair(int streams)
    {
        var id = Guid.NewGuid();
        using var s = MigrationSession.CreateSource(alpha, trust, measurement, id);
        using var d = MigrationSession.CreateDestination(beta, trust, measurement, id);
        var m2 = d.Respond(s.Start());
        var m4 = d.ReceiveSourceQuote(s.ReceiveDestinationQuote(m2));
        s.ReceiveConfirmation(m4);
        var source = new SessionRecordProtector(streams);
        var destination = new SessionRecordProtector(streams);
        source.Attach(s);
        destination.Attach(d);
        return (source, destination);
    }

    private static byte[] Protect(SessionRecordProtector p, MigrationRecordKind kind, int stream, long seq, byte[] plain)
    {
        var output = new byte[plain.Length + p.Overhead];
        var n = p.Protect(new RecordContext(kind, stream, seq), plain, output);
        Assert.Equal(output.Length, n);
        return output;
    }

    private static byte[] Open(SessionRecordProtector p, MigrationRecordKind kind, int stream, long seq, byte[] record)
    {
        var plain = new byte[record.Length];
        var n = p.Open(new RecordContext(kind, stream, seq), record, plain);
        return plain[..n];
    }

    [Fact]
    public void Records_open_in_order_and_hide_their_contents()
    {
        var (src, dst) = KeyedPair(3);
        var page = new byte[4096];
        for (var i = 0; i < page.Length; i++) page[i] = (byte)(i * 7 + 1);
        var r0 = Protect(src, MigrationRecordKind.PageBatch, 1, 0, page);
        var r1 = Protect(src, MigrationRecordKind.PageBatch, 1, 1, page);
        var state = Protect(src, MigrationRecordKind.State, 0, 0, [1, 2, 3]);
        Assert.True(r0.AsSpan().IndexOf(page.AsSpan(0, 64)) < 0, "the page is visible in its sealed record");
        Assert.False(r0.AsSpan().SequenceEqual(r1), "two records of the same page must differ (nonce per sequence)");
        Assert.Equal(page, Open(dst, MigrationRecordKind.PageBatch, 1, 0, r0));
        Assert.Equal(page, Open(dst, MigrationRecordKind.PageBatch, 1, 1, r1));
        Assert.Equal([1, 2, 3], Open(dst, MigrationRecordKind.State, 0, 0, state));
    }

    [Fact]
    public void Modified_replayed_reordered_or_relabelled_records_are_refused()
    {
        var page = new byte[4096];
        RandomNumberGenerator.Fill(page);

        var (src, dst) = KeyedPair(2);
        var r = Protect(src, MigrationRecordKind.PageBatch, 1, 0, page);
        r[100] ^= 1;
        Assert.Contains("Tampered", Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.PageBatch, 1, 0, r)).Message);

        (src, dst) = KeyedPair(2);
        var first = Protect(src, MigrationRecordKind.PageBatch, 1, 0, page);
        Open(dst, MigrationRecordKind.PageBatch, 1, 0, first);
        Assert.Contains("Replayed", Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.PageBatch, 1, 1, first)).Message);

        (src, dst) = KeyedPair(2);
        Protect(src, MigrationRecordKind.PageBatch, 1, 0, page);
        var second = Protect(src, MigrationRecordKind.PageBatch, 1, 1, page);
        Assert.Contains("OutOfOrder", Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.PageBatch, 1, 0, second)).Message);

        (src, dst) = KeyedPair(2);
        var onStream1 = Protect(src, MigrationRecordKind.PageBatch, 1, 0, page);
        Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.PageBatch, 0, 0, onStream1));

        (src, dst) = KeyedPair(2);
        var commit = Protect(src, MigrationRecordKind.Commit, 0, 0, [0, 0, 0, 0, 0, 0, 0, 2]);
        Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.State, 0, 0, commit));

        // Another session's keys (a recorded migration replayed into a new one) open nothing.
        var (other, _) = KeyedPair(2);
        (_, dst) = KeyedPair(2);
        var foreign = Protect(other, MigrationRecordKind.PageBatch, 1, 0, page);
        Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.PageBatch, 1, 0, foreign));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Records_protected_in_place_open_like_copied_ones_and_tampering_is_still_refused(bool confidential)
    {
        IRecordProtector src, dst;
        if (confidential) (src, dst) = KeyedPair(2);
        else (src, dst) = (new PlainRecordProtector(), new PlainRecordProtector());
        var page = new byte[4096];
        RandomNumberGenerator.Fill(page);

        // In place on the source (pages written straight into the record), copied open on the destination.
        var record = new byte[page.Length + src.Overhead];
        page.CopyTo(record, src.HeaderSize);
        src.ProtectInPlace(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), record);
        var opened = new byte[record.Length];
        var n = dst.Open(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), record, opened);
        Assert.Equal(page, opened[..n]);

        // Copied on the source, opened in place on the destination.
        var second = new byte[page.Length + src.Overhead];
        Assert.Equal(second.Length, src.Protect(new RecordContext(MigrationRecordKind.PageBatch, 1, 1), page, second));
        n = dst.OpenInPlace(new RecordContext(MigrationRecordKind.PageBatch, 1, 1), second);
        Assert.Equal(page, second.AsSpan(dst.HeaderSize, n).ToArray());

        // A replayed record is refused in place (the plain form checks the sequence in its header; the sealed one
        // authenticates it), and so is a modified one.
        var replayed = Assert.Throws<MigrationIntegrityException>(() => dst.OpenInPlace(new RecordContext(MigrationRecordKind.PageBatch, 1, 2), record));
        if (confidential) Assert.Contains("Replayed", replayed.Message);
        if (confidential) (src, dst) = KeyedPair(2);
        var third = new byte[page.Length + src.Overhead];
        page.CopyTo(third, src.HeaderSize);
        src.ProtectInPlace(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), third);
        third[src.HeaderSize + 100] ^= 1;
        Assert.Throws<MigrationIntegrityException>(() => dst.OpenInPlace(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), third));
    }

    private static byte[] Reply(IRecordProtector p, MigrationRecordKind kind, long seq, byte[] body)
    {
        var output = new byte[body.Length + p.Overhead];
        var n = p.ProtectReply(new RecordContext(kind, 0, seq), body, output);
        return output[..n];
    }

    private static byte[] OpenReply(SessionRecordProtector p, MigrationRecordKind kind, long seq, byte[] record)
    {
        var plain = new byte[record.Length];
        var n = p.OpenReply(new RecordContext(kind, 0, seq), record, plain);
        return plain[..n];
    }

    [Fact]
    public void The_destinations_Ready_and_Resumed_replies_are_authenticated_so_nobody_else_can_make_the_source_commit()
    {
        // Authentic replies open in order.
        var (src, dst) = KeyedPair(2);
        var ready = Reply(dst, MigrationRecordKind.Ready, 0, [4, 1, 0, 0, 0, 0, 0, 0, 0]);
        var resumed = Reply(dst, MigrationRecordKind.Resumed, 1, [5, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        Assert.Equal(9, OpenReply(src, MigrationRecordKind.Ready, 0, ready).Length);
        Assert.Equal(17, OpenReply(src, MigrationRecordKind.Resumed, 1, resumed).Length);

        // A Ready forged on the path (a plain, checksummed record), the source's own commit reflected back, a Ready
        // from another migration's destination, and the Ready replayed as the Resumed: all refused.
        (src, dst) = KeyedPair(2);
        Assert.Throws<MigrationIntegrityException>(() => OpenReply(src, MigrationRecordKind.Ready, 0, Reply(new PlainRecordProtector(), MigrationRecordKind.Ready, 0, new byte[9])));
        (src, dst) = KeyedPair(2);
        var commit = Protect(src, MigrationRecordKind.Commit, 0, 0, new byte[8]);
        Assert.Throws<MigrationIntegrityException>(() => OpenReply(src, MigrationRecordKind.Ready, 0, commit));
        var (_, otherDestination) = KeyedPair(2);
        (src, _) = KeyedPair(2);
        Assert.Throws<MigrationIntegrityException>(() => OpenReply(src, MigrationRecordKind.Ready, 0, Reply(otherDestination, MigrationRecordKind.Ready, 0, new byte[9])));
        (src, dst) = KeyedPair(2);
        ready = Reply(dst, MigrationRecordKind.Ready, 0, new byte[9]);
        OpenReply(src, MigrationRecordKind.Ready, 0, ready);
        Assert.Throws<MigrationIntegrityException>(() => OpenReply(src, MigrationRecordKind.Resumed, 1, ready));
        // Nor can a reply be passed off as a source record at the destination.
        (src, dst) = KeyedPair(2);
        Assert.Throws<MigrationIntegrityException>(() => Open(dst, MigrationRecordKind.Commit, 0, 0, Reply(dst, MigrationRecordKind.Ready, 0, new byte[9])));
    }

    [Fact]
    public void Nothing_is_sealed_or_opened_before_the_handshake()
    {
        var p = new SessionRecordProtector(2);
        Assert.Throws<InvalidOperationException>(() => p.Protect(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), new byte[8], new byte[64]));
        Assert.Throws<MigrationIntegrityException>(() => p.Open(new RecordContext(MigrationRecordKind.PageBatch, 1, 0), new byte[64], new byte[64]));
        Assert.Throws<InvalidOperationException>(() => p.ProtectReply(new RecordContext(MigrationRecordKind.Ready, 0, 0), new byte[9], new byte[64]));
        Assert.Throws<MigrationIntegrityException>(() => p.OpenReply(new RecordContext(MigrationRecordKind.Ready, 0, 0), new byte[64], new byte[64]));
    }

    [Fact]
    public async Task A_batch_dropped_at_the_end_of_a_stream_is_caught_by_the_sealed_state_counts()
    {
        var (src, dst) = KeyedPair(2);
        var env = new GateEnvironment(open: false);
        using var program = GuestProgram.Create(Wat.Load(WriterBytes), env, CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        await env.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var source = new EnclaveSource(program, src, 2);
        await source.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
        using var destination = new EnclaveDestination(Wat.Load(WriterBytes), CompileOptions.Default, InstanceOptions.Default,
            _ => new GateEnvironment(open: true), dst, 2);
        var buffer = new byte[source.MaxRecordBytes(1)];
        var records = new List<byte[]>();
        for (var page = 0; page < 3; page++)
        {
            var n = source.SealBatch([page], 0, 1, buffer);
            records.Add(buffer[..n]);
        }
        var state = source.SealState(0, null, 0);
        destination.ApplyBatch(1, records[0]);
        destination.ApplyBatch(1, records[1]); // the last batch never arrives
        var arrived = destination.OpenState(state);
        Assert.Contains("3 batches were sent, 2 arrived", Assert.Throws<MigrationIntegrityException>(() => destination.CompleteState(arrived)).Message);
        source.Unfreeze();
    }

    /// <summary>A keyed source with the writer guest frozen in its host call, and a fresh destination for it.</summary>
    private async Task<(EnclaveSource Source, EnclaveDestination Destination)> FrozenPairAsync(TimeSpan? jitBudget = null)
    {
        var (src, dst) = KeyedPair(2);
        var env = new GateEnvironment(open: false);
        var program = GuestProgram.Create(Wat.Load(WriterBytes), env, CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        await env.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var source = new EnclaveSource(program, src, 2);
        await source.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var destination = new EnclaveDestination(Wat.Load(WriterBytes), CompileOptions.Default, InstanceOptions.Default,
            _ => new GateEnvironment(open: true), dst, 2, jitBudget: jitBudget);
        return (source, destination);
    }

    [Fact]
    public async Task A_destination_that_discards_seals_a_proof_the_source_accepts_and_never_runs_a_late_commit()
    {
        async Task<(EnclaveSource Source, EnclaveDestination Destination, byte[] Commit)> ReadyPairAsync()
        {
            var (source, destination) = await FrozenPairAsync();
            var buffer = new byte[source.MaxRecordBytes(1)];
            var n = source.SealBatch([0], 0, 1, buffer);
            destination.ApplyBatch(1, buffer[..n]);
            destination.CompleteState(destination.OpenState(source.SealState(0, null, 2)));
            source.OpenReady(destination.SealReady(), 2);
            return (source, destination, source.SealCommit(2));
        }

        // The commit is lost on the way; the destination gives up and proves it.
        var (source, destination, commit) = await ReadyPairAsync();
        var proof = destination.TrySealDiscarded();
        Assert.NotNull(proof);
        Assert.Same(proof, destination.TrySealDiscarded());
        Assert.Contains("already discarded", Assert.Throws<MigrationIntegrityException>(() => destination.OpenCommit(commit)).Message);
        source.OpenDiscarded(proof!, 2);
        source.Unfreeze();
        destination.Dispose();

        // A proof for another epoch, or the Ready passed off as one, is refused.
        (source, destination, _) = await ReadyPairAsync();
        proof = destination.TrySealDiscarded();
        Assert.Throws<MigrationIntegrityException>(() => source.OpenDiscarded(proof!, 3));
        source.Unfreeze();
        destination.Dispose();

        // Once the commit was accepted there is nothing to discard: no proof.
        (source, destination, commit) = await ReadyPairAsync();
        destination.OpenCommit(commit);
        Assert.Null(destination.TrySealDiscarded());
        source.Retire();
        destination.Dispose();
    }

    [Fact]
    public async Task The_warm_up_or_a_sealed_frame_hint_has_the_resume_code_compiled_before_the_state_and_tampering_is_refused()
    {
        // The state arrives and the source is released; how many resume versions the destination still compiled then.
        static int SwitchOver(EnclaveSource source, EnclaveDestination destination)
        {
            destination.CompleteState(destination.OpenState(source.SealState(0, null, 2)));
            source.Unfreeze();
            destination.Dispose();
            return destination.ResumeVersionsCompiledAfterState;
        }

        // The destination compiles every resume version before it lets the source freeze: nothing is left for the state.
        var (source, destination) = await FrozenPairAsync();
        await destination.Ready.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, SwitchOver(source, destination));

        // Without the warm-up, the hint does it: the frozen functions' resume versions are ready before the state.
        (source, destination) = await FrozenPairAsync(jitBudget: TimeSpan.Zero);
        destination.OpenFrameHint(source.SealFrameHint());
        await destination.HintedResume.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, SwitchOver(source, destination));

        // With neither (a fresh destination: its own compiled module), they are compiled before Ready, not at the start.
        (source, destination) = await FrozenPairAsync(jitBudget: TimeSpan.Zero);
        Assert.True(SwitchOver(source, destination) > 0);

        // A modified hint is refused like any other sealed record.
        (source, destination) = await FrozenPairAsync();
        var hint = source.SealFrameHint();
        hint[^1] ^= 1;
        Assert.Throws<MigrationIntegrityException>(() => destination.OpenFrameHint(hint));
        source.Unfreeze();
        destination.Dispose();

        // One freeze, one hint: a second one is refused (it could only be someone making the destination compile).
        (source, destination) = await FrozenPairAsync();
        destination.OpenFrameHint(source.SealFrameHint());
        Assert.Contains("second frame hint", Assert.Throws<MigrationIntegrityException>(() => destination.OpenFrameHint(source.SealFrameHint())).Message);
        await destination.HintedResume.WaitAsync(TimeSpan.FromSeconds(30));
        source.Unfreeze();
        destination.Dispose();
    }

    [Fact]
    public void A_frame_hint_naming_code_the_module_does_not_have_is_skipped()
    {
        var compiled = ModuleCompiler.Compile(Wat.Load(WriterBytes), CompileOptions.Default);
        Execution.Precompile(compiled, [(int.MaxValue, 0), (-1, 0), (compiled.Module.FunctionCount - 1, int.MaxValue)]);
    }

    [Theory]
    [InlineData(Strategy.StopCopy)]
    [InlineData(Strategy.PreCopy)]
    [InlineData(Strategy.PostCopy)]
    public async Task Sealed_migration_with_the_handshake_over_the_control_stream_finishes_with_the_uninterrupted_result(Strategy strategy)
    {
        var env0 = new GateEnvironment(open: true);
        long expected;
        using (var reference = GuestProgram.Create(Wat.Load(WriterBytes), env0, CompileOptions.Default, InstanceOptions.Default))
        {
            reference.Start();
            expected = await env0.Done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        using var listener = new TcpStreamListener(IPAddress.Loopback);
        var sourceEnv = new GateEnvironment(open: false);
        using var program = GuestProgram.Create(Wat.Load(WriterBytes), sourceEnv, CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        await sourceEnv.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));

        const int streams = 3;
        using var sealer = new SessionRecordProtector(streams + 1);
        using var opener = new SessionRecordProtector(streams + 1);
        GateEnvironment? destinationEnv = null;
        var identity = WorkloadIdentity.NewInstance(measurement).Encode();
        var admission = new RecordingAdmission();
        var options = new MigrationOptions
        {
            Strategy = strategy,
            Streams = streams,
            Epoch = 2,
            ResumeAfterFailedCommit = false,
            Handshake = async (id, channel, ct) =>
            {
                using var s = MigrationSession.CreateSource(alpha, trust, measurement, id);
                await channel.SendAsync(s.Start(), ct);
                await channel.SendAsync(s.ReceiveDestinationQuote(await channel.ReceiveAsync(ct)), ct);
                s.ReceiveConfirmation(await channel.ReceiveAsync(ct));
                sealer.Attach(s);
            },
        };
        var destination = new DestinationMigration((setup, module) =>
        {
            var postCopy = setup.Strategy is Strategy.PostCopy or Strategy.Hybrid;
            return new EnclaveDestination(Wat.Load(module.ToArray()), CompileOptions.Default with { PresenceChecks = postCopy }, InstanceOptions.Default,
                _ => destinationEnv = new GateEnvironment(open: true), opener, setup.Streams, admission: admission);
        }, handshake: async (setup, channel, ct) =>
        {
            using var d = MigrationSession.CreateDestination(beta, trust, measurement, Guid.Parse(setup.MigrationId));
            await channel.SendAsync(d.Respond(await channel.ReceiveAsync(ct)), ct);
            await channel.SendAsync(d.ReceiveSourceQuote(await channel.ReceiveAsync(ct)), ct);
            opener.Attach(d);
        });
        var destTask = Task.Run(async () => await destination.RunAsync(await listener.AcceptAsync(streams + 1, default), default));
        var setupTemplate = new WorkloadSetup
        {
            MigrationId = "",
            WorkloadId = "w1",
            Name = "writer",
            ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(WriterBytes)),
            ModuleBytes = WriterBytes.Length,
            Strategy = strategy,
            Tracking = TrackingMethod.Compiler,
            Streams = 0,
            MemoryBytes = 0,
            Confidential = true,
        };
        var migration = new SourceMigration(new EnclaveSource(program, sealer, streams + 1) { Identity = identity },
            () => new Ferry.Enclave.Tracking.CompilerDirtyTracker(program.Instance.State), options);
        var run = migration.RunAsync(new TcpConnector(listener.Endpoint), setupTemplate, WriterBytes, default);
        sourceEnv.Gate.Set();
        var report = await run.WaitAsync(TimeSpan.FromSeconds(60));
        var dest = await destTask.WaitAsync(TimeSpan.FromSeconds(30));
        await dest.PostCopy.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(report.Succeeded);
        Assert.True(sealer.IsKeyed && opener.IsKeyed);
        Assert.Equal(2UL, dest.State.Epoch);
        Assert.Equal(GuestEndKind.Exited, (await dest.Enclave.Program!.Completion.WaitAsync(TimeSpan.FromSeconds(60))).Kind);
        Assert.Equal(expected, await destinationEnv!.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        // The identity and epoch were announced (sealed) before the state, so the destination could prepare its epoch record.
        var hex = Convert.ToHexString(identity);
        Assert.Equal([$"anticipate {hex} 2", $"admit {hex} 2", "commit"], admission.Calls);
    }

    /// <summary>Records what the destination asks of its admission, in order.</summary>
    private sealed class RecordingAdmission : IStateAdmission
    {
        public List<string> Calls { get; } = [];

        public void Anticipate(ReadOnlySpan<byte> identity, ulong epoch)
        {
            lock (Calls) Calls.Add($"anticipate {Convert.ToHexString(identity)} {epoch}");
        }

        public void Admit(MigrationRecords.StateRecord state)
        {
            lock (Calls) Calls.Add($"admit {Convert.ToHexString(state.Identity)} {state.Epoch}");
        }

        public void Commit()
        {
            lock (Calls) Calls.Add("commit");
        }
    }

    [Fact]
    public async Task A_refused_handshake_aborts_before_any_page_and_the_source_resumes()
    {
        using var listener = new TcpStreamListener(IPAddress.Loopback);
        var sourceEnv = new GateEnvironment(open: false);
        using var program = GuestProgram.Create(Wat.Load(WriterBytes), sourceEnv, CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        await sourceEnv.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using var sealer = new SessionRecordProtector(2);
        using var opener = new SessionRecordProtector(2);
        var onlyAlpha = TrustStore.Create([alpha.TrustEntry("alpha")]);
        var options = new MigrationOptions
        {
            Strategy = Strategy.StopCopy,
            Streams = 1,
            Handshake = async (id, channel, ct) =>
            {
                using var s = MigrationSession.CreateSource(alpha, onlyAlpha, measurement, id);
                await channel.SendAsync(s.Start(), ct);
                await channel.SendAsync(s.ReceiveDestinationQuote(await channel.ReceiveAsync(ct)), ct);
                s.ReceiveConfirmation(await channel.ReceiveAsync(ct));
                sealer.Attach(s);
            },
        };
        var destination = new DestinationMigration((setup, module) => new EnclaveDestination(Wat.Load(module.ToArray()), CompileOptions.Default,
            InstanceOptions.Default, _ => new GateEnvironment(open: true), opener, setup.Streams), handshake: async (setup, channel, ct) =>
        {
            using var d = MigrationSession.CreateDestination(beta, trust, measurement, Guid.Parse(setup.MigrationId));
            await channel.SendAsync(d.Respond(await channel.ReceiveAsync(ct)), ct);
            await channel.SendAsync(d.ReceiveSourceQuote(await channel.ReceiveAsync(ct)), ct);
            opener.Attach(d);
        });
        var destTask = Task.Run(async () => await destination.RunAsync(await listener.AcceptAsync(2, default), default));
        var setupTemplate = new WorkloadSetup
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
            Confidential = true,
        };
        var migration = new SourceMigration(new EnclaveSource(program, sealer, 2), null, options);
        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => migration.RunAsync(new TcpConnector(listener.Endpoint), setupTemplate, WriterBytes, default).WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.True(e.SourceResumed);
        Assert.Contains("untrusted platform", e.Message);
        Assert.False(sealer.IsKeyed);
        await Assert.ThrowsAnyAsync<Exception>(() => destTask.WaitAsync(TimeSpan.FromSeconds(30)));
        // The guest never stopped being the one copy: it runs on to the uninterrupted result.
        sourceEnv.Gate.Set();
        sourceEnv.SecondGate.Set();
        Assert.Equal(GuestEndKind.Exited, (await program.Completion.WaitAsync(TimeSpan.FromSeconds(60))).Kind);
        var env0 = new GateEnvironment(open: true);
        using var reference = GuestProgram.Create(Wat.Load(WriterBytes), env0, CompileOptions.Default, InstanceOptions.Default);
        reference.Start();
        Assert.Equal(await env0.Done.Task.WaitAsync(TimeSpan.FromSeconds(30)), await sourceEnv.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }
}
