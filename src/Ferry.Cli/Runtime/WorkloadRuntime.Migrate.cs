using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading.Channels;
using Ferry.Agent.Api;
using Ferry.Agent.Client;
using Ferry.Agent.Testing;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration;
using Ferry.Migration.Protocol;
using Ferry.Migration.Strategies;
using Ferry.Wasm.Runtime;

namespace Ferry.Cli.Runtime;

internal sealed partial class WorkloadRuntime
{
    /// <summary>Share of the downtime target pre-copy may spend on the last pages (the rest is for the switch-over).</summary>
    private const double PreCopyShareOfTarget = 0.4;

    /// <summary>
    /// Source side of a migration, driven here: validates the request, runs <see cref="SourceMigration"/> through
    /// the destination agent, streams progress to whoever asked (if they are still there) and records the
    /// outcome in status.json (lastMigration), where a client that lost the source agent finds it.
    /// </summary>
    private async Task MigrateAsync(MigrateRequest request, ControlConnection connection)
    {
        var requestId = request.RequestId ?? Guid.NewGuid().ToString();
        MigrationEvent Refuse(string error) => new() { Event = "result", RequestId = requestId, Ok = false, Error = error, SourceResumed = true };
        if (!MigrationNames.TryParseStrategy(request.Strategy, out var strategy))
        {
            await connection.EventAsync(Refuse($"unknown strategy '{request.Strategy}'")).ConfigureAwait(false);
            return;
        }
        if (!MigrationNames.TryParseTracking(request.Tracking, out var tracking))
        {
            await connection.EventAsync(Refuse($"unknown tracking method '{request.Tracking}'")).ConfigureAwait(false);
            return;
        }
        if (!AgentUrl.TryParse(request.To, out var to, out var urlError))
        {
            await connection.EventAsync(Refuse(urlError)).ConfigureAwait(false);
            return;
        }
        if (request.Streams is < 1 or > 32 || request.DowntimeTargetMs < 0 || request.MaxRounds is < 1)
        {
            await connection.EventAsync(Refuse("streams must be 1..32, the downtime target ≥ 0 and max rounds ≥ 1")).ConfigureAwait(false);
            return;
        }
        GuestProgram program;
        Func<Ferry.Enclave.Tracking.IDirtyPageTracker>? trackers = null;
        TaskCompletionSource done;
        lock (gate)
        {
            if (this.program is not { } p || status.State != WorkloadStates.Running)
            {
                _ = connection.EventAsync(Refuse($"the workload is {status.State}, not running"));
                return;
            }
            if (migration is { Task.IsCompleted: false })
            {
                _ = connection.EventAsync(Refuse($"a {handOver} of this workload is already in progress"));
                return;
            }
            if (arrived?.PostCopy is { Completion.IsCompleted: false })
            {
                _ = connection.EventAsync(Refuse("pages of the previous (post-copy) migration are still arriving; migrate it once they are all here"));
                return;
            }
            program = p;
            if (strategy != Strategy.StopCopy || tracking == TrackingMethod.Kernel)
            {
                try
                {
                    trackers = PageTrackers.For(tracking, program);
                }
                catch (Ferry.Enclave.Tracking.TrackingUnavailableException e)
                {
                    _ = connection.EventAsync(Refuse(e.Message));
                    return;
                }
            }
            done = migration = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            handOver = "migration";
            status = status with
            {
                State = WorkloadStates.Migrating,
                Migrating = new MigrationInProgress
                {
                    RequestId = requestId,
                    To = to.ToString().TrimEnd('/'),
                    Strategy = MigrationNames.Name(strategy),
                    Tracking = MigrationNames.Name(tracking),
                    StartedAt = DateTimeOffset.UtcNow,
                },
            };
            dir.WriteStatus(status);
        }
        var destination = to.ToString().TrimEnd('/');
        Log($"migrating to {destination}: {MigrationNames.Name(strategy)}, {MigrationNames.Name(tracking)} tracking, {request.Streams} streams");
        await connection.EventAsync(new MigrationEvent { Event = "accepted", RequestId = requestId, MemoryBytes = MemoryBytes }).ConfigureAwait(false);

        // Compile the migration's critical path while the destination is being prepared (see MigrationWarmup).
        var warm = MigrationWarmup.Start(confidential: confidential is not null);
        // And this guest's own unwind helpers, which the warm-up's guest does not have (compiled at first freeze otherwise).
        var unwind = Task.Run(() =>
        {
            try
            {
                return program.Instance.Compiled.PrepareUnwind();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log($"compiling the unwind helpers ahead failed (harmless: each compiles at its first use): {e.Message}");
                return 0;
            }
        });
        // And the resume versions of its functions, in the background while round 0 runs: auto-converge freezes and
        // resumes the guest at whatever safe point it reaches, and a resume at a stack shape not seen before waited
        // for the JIT (10-20 ms for a large function) with the guest frozen; a final freeze arriving meanwhile then
        // kept the throttle's pause inside the downtime (13-115 ms of "collect", docs/benchmarks.md). A destination
        // warms the same code up before it lets the source freeze (EnclaveDestination.JitBudget).
        _ = Task.Run(() =>
        {
            try
            {
                var compiled = Execution.WarmUpResume(program.Instance.Compiled, EnclaveDestination.JitBudget);
                Trace($"{compiled} resume versions compiled");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log($"compiling resume code ahead failed (harmless: each compiles at its first resume): {e.Message}");
            }
        });
        Guid? migrationId = null;
        var connector = new AgentConnector(to, spec.Id, spec.Name, request.From, hook is null ? null : (phase, id) => hook.At("source", phase, spec.Id, id.ToString()))
        {
            Trace = Tracing ? Trace : null,
            BeforeTransfer = async () =>
            {
                var took = await warm.ConfigureAwait(false);
                if (took > TimeSpan.Zero) Trace($"warm-up done ({took.TotalMilliseconds:0} ms)");
                Trace($"{await unwind.ConfigureAwait(false)} unwind helpers compiled");
            },
            Prepared = id =>
            {
                migrationId = id;
                Update(s => s with { Migrating = s.Migrating! with { MigrationId = id.ToString() } });
                _ = connection.EventAsync(new MigrationEvent { Event = "started", RequestId = requestId, MigrationId = id.ToString() });
            },
        };
        var relay = new ProgressRelay(this, connection, connector, requestId, MemoryBytes);
        var options = new MigrationOptions
        {
            Strategy = strategy,
            Tracking = tracking,
            Streams = request.Streams,
            // The target bounds the whole downtime, so pre-copy leaves part of it to the switch-over that
            // follows the last pages (collect, state, destination ready, commit: 5–11 ms measured at 1 GiB on
            // loopback under load, besides the last pages themselves; with 0.6 of 20 ms, kvstore's downtime
            // reached 24 ms, with 0.5 up to 22 ms, docs/benchmarks.md).
            DowntimeTarget = TimeSpan.FromMilliseconds(request.DowntimeTargetMs * PreCopyShareOfTarget),
            MaxRounds = request.MaxRounds ?? 30,
            AutoConverge = request.AutoConverge,
            ConfirmDestinationRunning = (id, ct) => ConfirmAsync(to, id, ct),
        };
        SessionRecordProtector? sealedRecords = null;
        if (confidential is { } host && measurement is { } measured && identity is { } workloadIdentity)
        {
            // Sealed migration: attest the destination's runtime, then seal every record under the session's keys;
            // the state carries (identity, epoch + 1). Resuming after a commit would be a rollback: never.
            var protector = sealedRecords = new SessionRecordProtector(request.Streams + 1);
            options = options with
            {
                Epoch = epoch + 1,
                ResumeAfterFailedCommit = false,
                Handshake = (id, channel, ct) => host.HandshakeAsSourceAsync(measured, id, channel, protector, Log, ct),
            };
        }
        var setup = new WorkloadSetup
        {
            MigrationId = "",
            WorkloadId = spec.Id,
            Name = spec.Name,
            ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(moduleBytes)),
            ModuleBytes = moduleBytes.Length,
            Strategy = strategy,
            Tracking = tracking,
            Streams = 0,
            MemoryBytes = 0,
            MemoryLimitBytes = spec.MemoryLimitBytes,
            Confidential = sealedRecords is not null,
            Launch = new Dictionary<string, string>
            {
                ["moduleName"] = spec.ModuleName,
                ["args"] = JsonSerializer.Serialize(spec.Args),
                ["env"] = JsonSerializer.Serialize(spec.Env),
            },
        };
        var enclave = new EnclaveSource(program, sealedRecords ?? (IRecordProtector)new PlainRecordProtector(), request.Streams + 1)
        {
            Identity = identity?.Encode() ?? [],
        };
        MigrationOutcome outcome;
        MigrationEvent result;
        try
        {
            var report = await new SourceMigration(enclave, trackers, options, relay).RunAsync(connector, setup, moduleBytes, CancellationToken.None).ConfigureAwait(false);
            if (strategy is Strategy.PostCopy or Strategy.Hybrid) report = await WithDestinationFaultsAsync(report, to, migrationId).ConfigureAwait(false);
            outcome = new MigrationOutcome { RequestId = requestId, MigrationId = report.MigrationId, To = destination, Succeeded = true, Report = report, EndedAt = DateTimeOffset.UtcNow };
            Update(s => s with
            {
                State = WorkloadStates.MigratedAway,
                MigratedTo = destination,
                Migrating = null,
                LastMigration = outcome,
                EndedAt = DateTimeOffset.UtcNow,
                Message = $"migrated to {destination}",
            });
            Log($"migrated to {destination}: downtime {report.DowntimeMs:0.###} ms, total {report.TotalMs:0} ms, {report.Rounds} rounds, {report.BytesSent >> 20} MiB");
            result = new MigrationEvent { Event = "result", RequestId = requestId, MigrationId = report.MigrationId, Ok = true, Report = report };
        }
        catch (MigrationFailedException e)
        {
            sealedRecords?.Dispose();
            var ended = program.Completion.IsCompleted && program.Completion.Result.Kind != GuestEndKind.Retired;
            var error = ended ? $"the workload ended ({program.Completion.Result.Kind}) during the migration" : e.Message;
            if (!ended && e.InnerException is not MigrationAbortedException && await DestinationErrorAsync(to, migrationId).ConfigureAwait(false) is { } why)
            {
                // The connection broke before the destination's reason arrived; its agent knows it.
                error += $" (the destination reports: {why})";
            }
            var resumed = e.SourceResumed && !ended;
            outcome = new MigrationOutcome
            {
                RequestId = requestId,
                MigrationId = migrationId?.ToString(),
                To = destination,
                Succeeded = false,
                Error = error,
                SourceResumed = resumed,
                WorkloadEnded = ended,
                EndedAt = DateTimeOffset.UtcNow,
            };
            Update(s => s with
            {
                // The end of the program (if it ended) is reported by the main thread; keep it.
                State = resumed ? WorkloadStates.Running : ended ? s.State : WorkloadStates.MigratedAway,
                MigratedTo = resumed || ended ? s.MigratedTo : destination,
                Message = resumed || ended ? s.Message : $"handed over to {destination}, but its acknowledgement was lost: {e.Message}",
                EndedAt = resumed || ended ? s.EndedAt : DateTimeOffset.UtcNow,
                Migrating = null,
                LastMigration = outcome,
            });
            Log(resumed ? $"migration to {destination} failed; the workload continues here: {e.Message}" : $"migration to {destination}: {error}");
            result = new MigrationEvent { Event = "result", RequestId = requestId, MigrationId = migrationId?.ToString(), Ok = false, Error = error, SourceResumed = resumed, WorkloadEnded = ended };
        }
        await relay.CompleteAsync().ConfigureAwait(false);
        // The migration is over (a new one may start) before whoever asked hears the result; the process,
        // if the guest left, waits until the result is out.
        var delivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        resultDelivered = delivered.Task;
        done.TrySetResult();
        await connection.EventAsync(result).ConfigureAwait(false);
        delivered.TrySetResult();
    }

    /// <summary>Completes once the last migration's result has been handed to the control connection.</summary>
    private Task resultDelivered = Task.CompletedTask;

    /// <summary>
    /// The acknowledgement was lost after commit: ask the destination agent, which answers "running" only if
    /// the guest runs there with all its pages, and otherwise makes sure it never will (kills that runtime).
    /// Retried while the agent is unreachable; an error means "unknown", which the migration treats as running.
    /// </summary>
    private static async Task<DestinationAnswer> ConfirmAsync(Uri to, Guid migrationId, CancellationToken ct)
    {
        Exception? last = null;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                using var client = new AgentClient(to, TimeSpan.FromSeconds(30));
                var answer = await client.ResolveAsync(migrationId.ToString(), ct).ConfigureAwait(false);
                Log($"acknowledgement lost after commit; the destination says: {answer.Outcome} ({answer.Detail})"
                    + (answer.DiscardProof is null ? "" : ", with its runtime's proof of discarding the state"));
                byte[]? proof = null;
                if (answer.DiscardProof is { } b64)
                {
                    try
                    {
                        proof = Convert.FromBase64String(b64);
                    }
                    catch (FormatException)
                    {
                        // Garbage from the path: no proof.
                    }
                }
                return new DestinationAnswer(answer.Outcome == "running", proof);
            }
            catch (AgentUnreachableException e)
            {
                last = e;
                await Task.Delay(TimeSpan.FromSeconds(attempt + 1), ct).ConfigureAwait(false);
            }
        }
        throw last!;
    }

    /// <summary>Why the destination's side of a failed migration failed, from its agent (best effort; null if unknown).</summary>
    private static async Task<string?> DestinationErrorAsync(Uri to, Guid? migrationId)
    {
        if (migrationId is not { } id) return null;
        try
        {
            using var client = new AgentClient(to, TimeSpan.FromSeconds(5));
            var info = await client.MigrationAsync(id.ToString()).ConfigureAwait(false);
            return string.IsNullOrWhiteSpace(info.Error) ? null : info.Error;
        }
        catch (Exception x) when (x is AgentUnreachableException or AgentErrorException or IOException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Post-copy faults are measured on the destination: fetch their latencies from its agent (best effort).</summary>
    private static async Task<MigrationReport> WithDestinationFaultsAsync(MigrationReport report, Uri to, Guid? migrationId)
    {
        if (migrationId is not { } id) return report;
        try
        {
            using var client = new AgentClient(to, TimeSpan.FromSeconds(10));
            var info = await client.MigrationAsync(id.ToString()).ConfigureAwait(false);
            return report with { FaultLatency = info.FaultLatency ?? new FaultLatency(0, 0, 0, 0, 0) };
        }
        catch (Exception e) when (e is AgentUnreachableException or AgentErrorException or IOException)
        {
            return report;
        }
    }

    /// <summary>
    /// Receives the migration's progress: forwards it (throttled, never blocking the migration) to the control
    /// connection, and reports the round phases to the test hook.
    /// </summary>
    private sealed class ProgressRelay : IProgress<MigrationProgress>
    {
        private readonly WorkloadRuntime owner;
        private readonly AgentConnector connector;
        private readonly string requestId;
        private readonly ulong memoryBytes;
        private readonly Channel<MigrationEvent> events = Channel.CreateBounded<MigrationEvent>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropOldest });
        private readonly Task pump;
        // Progress lines for the log, written by a background task: the "final" and "state" phases are reported
        // while the guest is frozen, and a synchronous write to stderr cost about a millisecond of downtime each.
        private readonly Channel<string> logs = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Task logPump;
        private readonly object gate = new();
        private readonly HashSet<string> reached = [];
        private long lastSent;
        private (string, int) lastKey;

        public ProgressRelay(WorkloadRuntime owner, ControlConnection connection, AgentConnector connector, string requestId, ulong memoryBytes)
        {
            this.owner = owner;
            this.connector = connector;
            this.requestId = requestId;
            this.memoryBytes = memoryBytes;
            pump = Task.Run(async () =>
            {
                await foreach (var e in events.Reader.ReadAllAsync().ConfigureAwait(false)) await connection.EventAsync(e).ConfigureAwait(false);
            });
            logPump = Task.Run(async () =>
            {
                await foreach (var line in logs.Reader.ReadAllAsync().ConfigureAwait(false)) Log(line);
            });
        }

        public void Report(MigrationProgress p)
        {
            HookPhase(p);
            lock (gate)
            {
                var key = (p.Phase, p.Round);
                var now = Stopwatch.GetTimestamp();
                if (key != lastKey)
                {
                    Trace($"progress {p.Phase} round {p.Round}");
                    logs.Writer.TryWrite($"migration: {p.Phase} round {p.Round}: {p.PagesPlanned} pages");
                }
                if (key == lastKey && Stopwatch.GetElapsedTime(lastSent, now) < TimeSpan.FromMilliseconds(50)) return;
                lastKey = key;
                lastSent = now;
            }
            events.Writer.TryWrite(new MigrationEvent
            {
                Event = "progress",
                RequestId = requestId,
                MigrationId = connector.MigrationId?.ToString(),
                Phase = connector.CommitSent ? "post-copy" : p.Phase,
                Round = p.Round,
                PagesSent = p.PagesSent,
                PagesPlanned = p.PagesPlanned,
                BytesSent = p.BytesSent,
                MemoryBytes = memoryBytes,
            });
        }

        private void HookPhase(MigrationProgress p)
        {
            if (owner.hook is not { } hook) return;
            string? phase = null;
            lock (gate)
            {
                if (connector.CommitSent) phase = "postcopy";
                else if (p.Phase is "pre-copy" or "final" && p.Round == 0) phase = "round0";
                else if (p.Phase == "pre-copy" && p.Round >= 1) phase = "round1";
                if (phase is not null && !reached.Add(phase)) phase = null;
            }
            if (phase is null) return;
            var action = hook.At("source", phase, owner.spec.Id, connector.MigrationId?.ToString());
            if (action == TestHook.Cut) connector.Cut();
            else if (action == TestHook.Exit) TestHook.ExitNow();
        }

        public async Task CompleteAsync()
        {
            events.Writer.TryComplete();
            logs.Writer.TryComplete();
            try
            {
                await Task.WhenAll(pump, logPump).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // A stuck reader: the result goes out regardless.
            }
        }
    }
}
