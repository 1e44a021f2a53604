using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Streams;
using Ferry.Agent.Testing;
using Ferry.Agent.Workloads;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration;
using Ferry.Migration.Strategies;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Runtime;

/// <summary>
/// A workload's runtime process (`ferry runtime launch|incoming --dir DIR`, started by the agent in its own
/// session). It runs one guest, reports its state in status.json, answers the agent on control.sock and drives
/// its own migrations: the agent only relays, so an agent restart never breaks a migration in flight.
/// Launch mode starts the module; incoming mode accepts a migration's streams on data.sock (piped there by the
/// agent) and continues the guest that arrives. Either way the guest is compiled with write tracking so it
/// can be migrated on.
/// </summary>
internal sealed partial class WorkloadRuntime : IDisposable
{
    private readonly WorkloadDirectory dir;
    private readonly object gate = new();
    private readonly TestHook? hook = TestHook.FromEnvironment();
    private WorkloadSpec spec;
    private WorkloadStatus status;
    private GuestProgram? program;
    private byte[] moduleBytes = [];
    private EnclaveDestination? arrived;
    private ControlServer? control;
    private TaskCompletionSource? migration;
    /// <summary>Confidential workloads: the host's TEE backend, trust file and epoch store.</summary>
    private ConfidentialHost? confidential;
    private byte[]? measurement;
    /// <summary>Confidential workloads: identity and the epoch the guest runs under here.</summary>
    private Ferry.Enclave.Confidential.WorkloadIdentity? identity;
    private ulong epoch;
    private SessionRecordProtector? incomingProtector;
    private EpochAdmission? incomingAdmission;

    private WorkloadRuntime(WorkloadDirectory dir)
    {
        this.dir = dir;
        spec = dir.ReadSpec();
        status = new WorkloadStatus { State = WorkloadStates.Incoming, Pid = Environment.ProcessId };
    }

    public static int Run(string mode, string path)
    {
        var dir = new WorkloadDirectory(path);
        using var runtime = new WorkloadRuntime(dir);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            _ = Task.Run(() => runtime.StopAsync("SIGTERM"));
        });
        return mode switch
        {
            "incoming" => runtime.Incoming(),
            "restore" => runtime.Restore(),
            _ => runtime.Launch(),
        };
    }

    private static void Log(string message) => Console.Error.WriteLine($"[ferry-runtime {DateTime.UtcNow:HH:mm:ss.fff}] {message}");

    /// <summary>FERRY_TRACE=1: timestamps (µs) of every control message and phase, for finding where downtime goes.</summary>
    private static readonly bool Tracing = Environment.GetEnvironmentVariable("FERRY_TRACE") == "1";

    /// <summary>
    /// One FERRY_TRACE line: wall-clock time, then CLOCK_MONOTONIC in nanoseconds (what <c>perf record -k
    /// CLOCK_MONOTONIC</c> stamps scheduler events with), methods JIT-compiled so far and the time spent on them, and
    /// GC counts (gen 0/1/2) with the total pause: enough to tell whether a slow switch-over step waited for the JIT, a
    /// collection, or a core (docs/benchmarks.md, "what a switch-over waits for").
    /// </summary>
    private static void Trace(string what)
    {
        if (!Tracing) return;
        Console.Error.WriteLine(
            $"[ferry-trace {DateTime.UtcNow:HH:mm:ss.ffffff} mono={(long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1e9 / System.Diagnostics.Stopwatch.Frequency))} " +
            $"jit={System.Runtime.JitInfo.GetCompiledMethodCount()}/{System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds:0.0}ms " +
            $"gc={GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}/{GC.GetTotalPauseDuration().TotalMilliseconds:0.00}ms] {what}");
    }

    private void Update(Func<WorkloadStatus, WorkloadStatus> change)
    {
        lock (gate)
        {
            status = change(status) with { Pid = Environment.ProcessId };
            dir.WriteStatus(status);
        }
    }

    private static CompileOptions CompileFor(bool postCopy) => CompileOptions.Default with { DirtyTracking = true, PresenceChecks = postCopy };

    /// <summary>
    /// How an incoming guest is compiled: post-copy faults are served either by compiled presence checks or by
    /// userfaultfd (MISSING mode, UFFDIO_COPY); the latter needs no instrumented loads but code that stays
    /// suspendable in a kernel fault. Shared with <see cref="MigrationWarmup"/>, which must compile the same code.
    /// </summary>
    internal static CompileOptions CompileForIncoming(bool postCopy, bool kernelPostCopy) =>
        kernelPostCopy ? CompileFor(postCopy: false) with { FullyInterruptible = true } : CompileFor(postCopy);

    private static Module Decode(byte[] bytes)
    {
        var m = Wasm.Binary.ModuleDecoder.Decode(bytes);
        Wasm.Validation.ModuleValidator.Validate(m);
        return m;
    }

    private ulong MemoryBytes => program?.Instance.Memory?.Size ?? arrived?.Memory?.Size ?? 0;

    // ---- launch ----

    private int Launch()
    {
        try
        {
            moduleBytes = File.ReadAllBytes(dir.Module);
            var module = Decode(moduleBytes);
            var environment = GuestEnvironments.For(module, new WasiOptions { Args = [spec.ModuleName, .. spec.Args], Env = spec.Env });
            program = GuestProgram.Create(module, environment, CompileFor(postCopy: false), new InstanceOptions { MaxMemoryBytes = spec.MemoryLimitBytes });
            if (!(program.Instance.Exports.TryGetValue("_start", out var start) && start is FuncRef)) throw new LinkException("the module has no _start export");
            if (spec.Confidential)
            {
                // Measured launch: identity = measurement + a fresh instance id, at epoch 1 on this host.
                confidential = ConfidentialHost.Open(dir);
                measurement = ConfidentialHost.Measure(moduleBytes, spec);
                identity = Ferry.Enclave.Confidential.WorkloadIdentity.NewInstance(measurement);
                epoch = 1;
                if (!confidential.Epochs.TryAccept(identity, epoch)) throw new ConfidentialSetupException("the epoch store refused a fresh workload identity");
                Log($"confidential workload, measurement {Convert.ToHexStringLower(measurement)}");
            }
            control = new ControlServer(dir.ControlSocket, HandleAsync);
        }
        catch (Exception e)
        {
            var message = e is WasmException or IOException or ConfidentialSetupException ? e.Message : $"{e.GetType().Name}: {e.Message}";
            return FailedToStart($"cannot start {spec.ModuleName}", message);
        }
        MarkRunning(restoredFrom: null);
        // Test hook: a test may hold the program here, compiled but not started (see TestHook).
        if (hook?.At("launch", "start", spec.Id, null) == TestHook.Exit) TestHook.ExitNow();
        program.Start();
        return RunToEnd();
    }

    /// <summary>Waits for the guest to end and reports how; returns the process exit code.</summary>
    private int RunToEnd()
    {
        // status.json's memory size (what `ferry ps` shows) follows the guest within a quarter of a second; checking
        // is one read, and the file is written only when the size changed.
        using var memoryWatch = new Timer(_ =>
        {
            var size = MemoryBytes;
            if (size != Volatile.Read(ref status).MemoryBytes) Update(s => s with { MemoryBytes = size });
        }, null, 250, 250);
        var end = program!.Completion.GetAwaiter().GetResult();
        var code = end.ExitCode;
        switch (end.Kind)
        {
            case GuestEndKind.Retired:
                // Handed over: the migration reports the outcome, then this process leaves.
                migration?.Task.Wait(TimeSpan.FromSeconds(60));
                resultDelivered.Wait(TimeSpan.FromSeconds(15));
                return 0;
            case GuestEndKind.Exited:
                Update(s => s with { State = WorkloadStates.Exited, ExitCode = end.ExitCode, EndedAt = DateTimeOffset.UtcNow, MemoryBytes = MemoryBytes });
                break;
            case GuestEndKind.Trapped:
                Console.Error.WriteLine($"ferry: wasm trap: {end.Message}");
                if (end.Backtrace is { Count: > 0 } bt)
                {
                    Console.Error.WriteLine("wasm backtrace:");
                    foreach (var f in bt) Console.Error.WriteLine($"  {f}");
                }
                Update(s => s with { State = WorkloadStates.Trapped, ExitCode = end.ExitCode, Message = end.Message, EndedAt = DateTimeOffset.UtcNow });
                break;
            default:
                Log($"runtime error: {end.Message}");
                Update(s => s with { State = WorkloadStates.Failed, ExitCode = 1, Message = end.Message, EndedAt = DateTimeOffset.UtcNow });
                code = 1;
                break;
        }
        // A migration that was under way when the program ended reports that first.
        migration?.Task.Wait(TimeSpan.FromSeconds(30));
        resultDelivered.Wait(TimeSpan.FromSeconds(15));
        return code;
    }

    private async Task StopAsync(string why)
    {
        lock (gate)
        {
            if (migration is { Task.IsCompleted: false })
            {
                Log($"{why} ignored: a {handOver} is in progress (stopping now could lose the workload)");
                return;
            }
            if (WorkloadStates.IsFinal(status.State)) return;
        }
        // Freeze first: the guest thread writes out buffered output when it stops.
        if (program is { } p && !p.Completion.IsCompleted)
        {
            try
            {
                await p.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Ended, or not at a safe point in time: stop anyway.
            }
        }
        Log($"stopped ({why})");
        Update(s => s with { State = WorkloadStates.Stopped, ExitCode = 143, EndedAt = DateTimeOffset.UtcNow, Message = $"stopped ({why})" });
        Console.Out.Flush();
        Environment.Exit(143);
    }

    // ---- control socket ----

    private async Task HandleAsync(ControlRequest request, ControlConnection connection)
    {
        switch (request.Op)
        {
            case "status":
                await connection.ReplyAsync(new ControlReply { Ok = true, Status = LiveStatus() }).ConfigureAwait(false);
                break;
            case "stop":
                bool migrating;
                lock (gate) migrating = migration is { Task.IsCompleted: false };
                if (migrating)
                {
                    await connection.ReplyAsync(new ControlReply { Ok = false, Error = $"a {handOver} of the workload is in progress; stop it once it has finished" }).ConfigureAwait(false);
                    break;
                }
                await connection.ReplyAsync(new ControlReply { Ok = true }).ConfigureAwait(false);
                await StopAsync("ferry stop").ConfigureAwait(false);
                break;
            case "migrate" when request.Migrate is { } m:
                await MigrateAsync(m, connection).ConfigureAwait(false);
                break;
            case "checkpoint":
                await CheckpointAsync(connection).ConfigureAwait(false);
                break;
            case "discard":
                // The destination agent asks on behalf of a source that lost contact after its commit: decide now
                // (discard unless the commit was already accepted) and hand out the enclave's proof.
                var proof = arrived?.TrySealDiscarded();
                if (proof is not null) PublishDiscardProof(proof);
                await connection.ReplyAsync(new ControlReply { Ok = true, Status = LiveStatus(), DiscardProof = proof is null ? null : Convert.ToBase64String(proof) }).ConfigureAwait(false);
                break;
            default:
                await connection.ReplyAsync(new ControlReply { Ok = false, Error = $"unknown request '{request.Op}' (status, stop, migrate, checkpoint, discard)" }).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>The status with live figures (memory size, post-copy progress).</summary>
    private WorkloadStatus LiveStatus()
    {
        lock (gate)
        {
            var s = status with { MemoryBytes = MemoryBytes };
            if (s.Incoming is { } incoming && arrived?.PostCopy is { } pc)
            {
                var latencies = pc.FaultLatencies;
                s = s with
                {
                    Incoming = incoming with
                    {
                        PostCopyFaults = latencies.Length,
                        FaultLatency = Summarize(latencies),
                        PendingPages = pc.Missing,
                    },
                };
            }
            return s;
        }
    }

    internal static FaultLatency? Summarize(double[] ms)
    {
        if (ms.Length == 0) return null;
        var sorted = ms.Order().ToArray();
        double At(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(q * sorted.Length))];
        return new FaultLatency(sorted.Length, sorted[0], At(0.5), At(0.99), sorted[^1]);
    }

    // ---- incoming ----

    private int Incoming()
    {
        Trace("incoming runtime up");
        // Compile the migration's critical path now, while the source prepares and sends pages.
        _ = MigrationWarmup.Start().ContinueWith(t => Log($"migration code warmed up in {t.Result.TotalMilliseconds:0} ms"), TaskScheduler.Default);
        Socket listener;
        try
        {
            File.Delete(dir.DataSocket);
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(dir.DataSocket));
            listener.Listen(64);
            control = new ControlServer(dir.ControlSocket, HandleAsync);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            Update(s => s with { State = WorkloadStates.Failed, Message = $"cannot listen on {dir.DataSocket}: {e.Message}", EndedAt = DateTimeOffset.UtcNow });
            return 1;
        }
        var migrationId = spec.MigrationId ?? "";
        Log($"waiting for the {spec.Streams} streams of migration {migrationId}");
        Update(s => s with
        {
            State = WorkloadStates.Incoming,
            Incoming = new IncomingMigration { MigrationId = migrationId, Phase = IncomingPhases.Waiting },
        });
        DestinationResult result;
        try
        {
            Stream[] streams;
            using (listener)
            {
                streams = AcceptAsync(listener, spec.Streams, TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            }
            File.Delete(dir.DataSocket);
            Trace("streams accepted");
            var handedOver = streams.Count(s => s is NetworkStream { Socket.AddressFamily: not AddressFamily.Unix });
            Log($"{streams.Length} migration streams connected: {handedOver} handed over by the agent, {streams.Length - handedOver} relayed through it");
            incomingStreams = streams;
            SetPhase(IncomingPhases.Receiving, null);
            if (hook?.At("destination", "receiving", spec.Id, migrationId) is { } action) Apply(action, streams);
            var destination = new DestinationMigration(CreateEnclave, OnPhase, TimeSpan.FromSeconds(60), IncomingHandshakeAsync)
            {
                Discarded = PublishDiscardProof,
                BeforeFreeze = () => MigrationWarmup.Start(),
                Trace = Tracing ? Trace : null,
            };
            result = destination.RunAsync(streams, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            incomingAdmission?.Dispose(); // its staged epoch record, if any, accepts nothing
            Log($"incoming migration {migrationId} failed: {e.Message}");
            Update(s => s with
            {
                State = WorkloadStates.Failed,
                Message = $"incoming migration failed: {e.Message}",
                EndedAt = DateTimeOffset.UtcNow,
                Incoming = (s.Incoming ?? new IncomingMigration { MigrationId = migrationId, Phase = IncomingPhases.Failed }) with { Phase = IncomingPhases.Failed, Error = e.Message },
            });
            return 1;
        }
        if (arrived?.PostCopy is { } pc)
        {
            _ = pc.Completion.ContinueWith(_ => SetPhase(IncomingPhases.Running, null), TaskScheduler.Default);
            _ = result.PostCopy.ContinueWith(t =>
            {
                if (!t.IsFaulted || pc.Completion.IsCompleted) return;
                // The source is gone before every page arrived: this copy cannot go on. The source, if it
                // lives, still holds the complete frozen state and resumes (see docs/migration.md).
                var why = t.Exception?.GetBaseException().Message;
                Log($"post-copy failed with {pc.Missing} pages still missing: {why}");
                Update(s => s with
                {
                    State = WorkloadStates.Failed,
                    Message = $"post-copy failed with {pc.Missing} pages missing: {why}",
                    EndedAt = DateTimeOffset.UtcNow,
                    Incoming = s.Incoming! with { Phase = IncomingPhases.Failed, Error = why },
                });
                Console.Out.Flush();
                Environment.Exit(1);
            }, TaskScheduler.Default);
        }
        Log($"migration {migrationId} arrived; the workload runs here");
        return RunToEnd();
    }

    private static async Task<Stream[]> AcceptAsync(Socket listener, int count, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var streams = new Stream[count];
        try
        {
            for (var i = 0; i < count; i++) streams[i] = await StreamHandoff.AcceptAsync(listener, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            foreach (var s in streams) s?.Dispose();
            throw new TimeoutException($"only some of the {count} migration streams arrived within {timeout.TotalSeconds:0} s");
        }
        return streams;
    }

    /// <summary>Test hook actions on the destination side.</summary>
    private static void Apply(string action, IEnumerable<Stream> streams)
    {
        if (action == TestHook.Exit) TestHook.ExitNow();
        if (action != TestHook.Cut) return;
        foreach (var s in streams) s.Dispose();
    }

    private Stream[] incomingStreams = [];

    private EnclaveDestination CreateEnclave(Migration.Protocol.WorkloadSetup setup, ReadOnlyMemory<byte> module)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        moduleBytes = module.ToArray();
        var decoded = Decode(moduleBytes);
        File.WriteAllBytes(dir.Module, moduleBytes);
        string[] List(string key) =>
            setup.Launch.TryGetValue(key, out var json) ? JsonSerializer.Deserialize<string[]>(json) ?? [] : [];
        spec = spec with
        {
            Name = setup.Name,
            ModuleName = setup.Launch.GetValueOrDefault("moduleName", "module.wasm"),
            Args = List("args"),
            Env = List("env"),
            MemoryLimitBytes = setup.MemoryLimitBytes,
        };
        dir.WriteSpec(spec);
        Update(s => s with { Incoming = s.Incoming! with { Strategy = AgentNames(setup.Strategy) } });
        var postCopy = setup.Strategy is Migration.Protocol.Strategy.PostCopy or Migration.Protocol.Strategy.Hybrid;
        string? fallback = null;
        var kernel = postCopy && PageTrackers.KernelPostCopy(setup.Tracking, out fallback);
        if (fallback is not null) Log(fallback);
        var compile = CompileForIncoming(postCopy, kernel);
        IRecordProtector protector = new PlainRecordProtector();
        if (setup.Confidential)
        {
            // The destination measures what it was sent itself: the handshake succeeds only if the source runs
            // the same module under the same launch configuration.
            spec = spec with { Confidential = true };
            dir.WriteSpec(spec);
            confidential = ConfidentialHost.Open(dir);
            measurement = ConfidentialHost.Measure(moduleBytes, spec);
            protector = incomingProtector = new SessionRecordProtector(setup.Streams);
            incomingAdmission = new EpochAdmission(confidential.Epochs, measurement);
            Update(s => s with { Confidential = true, Measurement = Convert.ToHexStringLower(measurement) });
        }
        arrived = new EnclaveDestination(decoded, compile, new InstanceOptions { MaxMemoryBytes = setup.MemoryLimitBytes },
            state => GuestEnvironments.Restore(state, new WasiOptions()),
            protector, setup.Streams, kernelPostCopy: kernel, admission: incomingAdmission);
        // Only a warm-up: the real instantiation reports whatever is wrong, with the arrived state.
        arrived.Rehearse(GuestEnvironments.For(decoded, new WasiOptions()), e => Log($"instantiation rehearsal failed (harmless): {e.Message}"));
        _ = arrived.Ready.ContinueWith(t =>
        {
            Log(t.IsFaulted
                ? $"cannot compile {setup.Name}: {t.Exception!.GetBaseException().Message}"
                : $"module compiled and instantiated once in {started.ElapsedMilliseconds} ms (while the first pages arrived)");
            if (!t.IsFaulted && hook?.At("destination", "compiled", spec.Id, setup.MigrationId) == TestHook.Exit) TestHook.ExitNow();
        }, TaskScheduler.Default);
        Log($"receiving {setup.Name} ({MigrationNames.Name(setup.Strategy)}, {setup.MemoryBytes >> 20} MiB"
            + (postCopy ? $", post-copy faults served by {(kernel ? "userfaultfd" : "compiled presence checks")}" : "")
            + ")");
        return arrived;
    }

    /// <summary>Confidential incoming migration: the destination's half of the attestation handshake.</summary>
    private Task IncomingHandshakeAsync(Migration.Protocol.WorkloadSetup setup, Migration.Protocol.IHandshakeChannel channel, CancellationToken ct)
    {
        if (confidential is null || measurement is null || incomingProtector is null) throw new InvalidOperationException("not set up for a confidential workload");
        if (!Guid.TryParse(spec.MigrationId, out var id)) throw new ConfidentialSetupException("no migration id to attest");
        return HandshakeWarmAsync(confidential, measurement, id, channel, incomingProtector, ct);
    }

    private async Task HandshakeWarmAsync(ConfidentialHost host, byte[] measured, Guid id, Migration.Protocol.IHandshakeChannel channel, SessionRecordProtector protector, CancellationToken ct)
    {
        // Compile the sealed path before any page moves (and so before any freeze): otherwise the first confidential
        // migration into this runtime opens records and checks the commit with cold code while the guest is down.
        var took = await MigrationWarmup.Start(confidential: true).WaitAsync(ct).ConfigureAwait(false);
        Log($"sealed migration code warmed up ({took.TotalMilliseconds:0} ms since this runtime started warming)");
        await host.HandshakeAsDestinationAsync(measured, id, channel, protector, Log, ct).ConfigureAwait(false);
    }

    private static string AgentNames(Migration.Protocol.Strategy s) => MigrationNames.Name(s);

    /// <summary>A launch or restore that never got the guest running: status Failed with exit code 1.</summary>
    private int FailedToStart(string what, string message)
    {
        Log($"{what}: {message}");
        Update(s => s with { State = WorkloadStates.Failed, Message = message, ExitCode = 1, EndedAt = DateTimeOffset.UtcNow });
        return 1;
    }

    /// <summary>The guest runs here (launched, or restored from <paramref name="restoredFrom"/>).</summary>
    private void MarkRunning(string? restoredFrom) =>
        Update(s => s with
        {
            State = WorkloadStates.Running,
            StartedAt = DateTimeOffset.UtcNow,
            MemoryBytes = MemoryBytes,
            Confidential = spec.Confidential,
            Measurement = measurement is null ? null : Convert.ToHexStringLower(measurement),
            RestoredFrom = restoredFrom,
        });

    /// <summary>Keeps the destination enclave's discard proof in status.json, where the agent finds it even after this process ends.</summary>
    private void PublishDiscardProof(byte[] proof)
    {
        if (!spec.Confidential) return; // a plain source takes its agent's word; nothing to prove
        Update(s => s with { Incoming = (s.Incoming ?? new IncomingMigration { MigrationId = spec.MigrationId ?? "", Phase = IncomingPhases.Failed }) with { DiscardProof = Convert.ToBase64String(proof) } });
        Log("the incoming state was discarded before any commit was accepted; proof kept for the source");
    }

    private void SetPhase(string phase, string? error) =>
        Update(s => s with { Incoming = (s.Incoming ?? new IncomingMigration { MigrationId = spec.MigrationId ?? "", Phase = phase }) with { Phase = phase, Error = error } });

    private static string PhaseName(DestinationPhase phase) => phase switch
    {
        DestinationPhase.Receiving => nameof(DestinationPhase.Receiving),
        DestinationPhase.Ready => nameof(DestinationPhase.Ready),
        DestinationPhase.Running => nameof(DestinationPhase.Running),
        _ => nameof(DestinationPhase.Failed),
    };

    private void OnPhase(DestinationPhase phase, string? error)
    {
        // Not an interpolated enum: formatting one compiles Enum's generic formatting code on first use (about a
        // millisecond of JIT), and the Ready phase is reported while the guest is frozen.
        if (Tracing) Trace("destination phase " + PhaseName(phase));
        if (phase != DestinationPhase.Ready) Log($"incoming migration: {PhaseName(phase)}{(error is null ? "" : ": " + error)}");
        switch (phase)
        {
            case DestinationPhase.Receiving:
                SetPhase(IncomingPhases.Receiving, null);
                break;
            case DestinationPhase.Ready:
                if (hook?.At("destination", "ready", spec.Id, spec.MigrationId) is { } ready) Apply(ready, incomingStreams);
                // The guest is frozen on the source until it hears Ready: the log line and status.json (about 2 ms
                // here) are bookkeeping nothing depends on, so they are written off that path, and only if nothing
                // newer (running, failed) was recorded meanwhile.
                _ = Task.Run(() =>
                {
                    Log("incoming migration: Ready");
                    Update(s => s.Incoming is { Phase: IncomingPhases.Receiving } incoming ? s with { Incoming = incoming with { Phase = IncomingPhases.Ready } } : s);
                });
                break;
            case DestinationPhase.Running:
                program = arrived!.Program;
                if (incomingAdmission is { Identity: { } id })
                {
                    identity = id;
                    epoch = incomingAdmission.Epoch;
                }
                var pending = arrived.PostCopy is { } pc && !pc.Completion.IsCompleted;
                Update(s => s with
                {
                    State = WorkloadStates.Running,
                    StartedAt = DateTimeOffset.UtcNow,
                    MigratedFrom = spec.From,
                    MemoryBytes = MemoryBytes,
                    Incoming = s.Incoming! with { Phase = pending ? IncomingPhases.PostCopy : IncomingPhases.Running },
                });
                if (hook?.At("destination", "running", spec.Id, spec.MigrationId) is { } running) Apply(running, incomingStreams);
                break;
            case DestinationPhase.Failed:
                SetPhase(IncomingPhases.Failed, error);
                break;
        }
    }

    public void Dispose()
    {
        control?.Dispose();
        confidential?.Dispose();
    }
}
