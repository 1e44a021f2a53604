using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Enclave.Confidential;
using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Runtime;

/// <summary>A checkpoint cannot be written or restored here; the message says why (shown to the operator as it is).</summary>
internal sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Checkpoints (`ferry checkpoint ID --on URL`, `ferry restore --on URL FILE`; docs/confidential.md, "Sealed checkpoints").
/// A plain workload's checkpoint is a plain snapshot (docs/snapshot-format.md). A confidential workload's checkpoint is
/// the same snapshot sealed as it is written (<see cref="SealedCheckpoint"/>, content key sealed to this host's platform)
/// under the workload's identity and epoch e+1: a migration to disk. The guest is frozen before and retired after, so no
/// copy runs while the checkpoint exists, and the host's epoch store lets it be restored once.
/// </summary>
internal sealed partial class WorkloadRuntime
{
    /// <summary>What is handing the guest over right now ("migration" or "checkpoint"), for refusals.</summary>
    private string handOver = "migration";

    /// <summary>
    /// Snapshot metadata keys that carry the workload's launch configuration, so that a restore can rebuild the spec and,
    /// for a sealed checkpoint, recompute the measurement from exactly what the guest will see. Inside a sealed
    /// checkpoint they are encrypted and authenticated with the rest of the state.
    /// </summary>
    private static class LaunchKeys
    {
        public const string Id = "workload.id";
        public const string Name = "workload.name";
        public const string Module = "workload.module";
        public const string Args = "workload.args";
        public const string Env = "workload.env";
        public const string MemoryLimit = "workload.memory_limit";
        public const string Host = "workload.host";
    }

    // ---- writing ----

    /// <summary>
    /// Control request "checkpoint": freeze the guest at a safe point, write the checkpoint into the workload directory,
    /// retire the guest and end this runtime. If the write fails, the guest continues here (for a confidential workload
    /// only under a new epoch that makes whatever reached the disk stale; see <see cref="ResumeAfterFailedCheckpoint"/>).
    /// </summary>
    private async Task CheckpointAsync(ControlConnection connection)
    {
        GuestProgram program;
        TaskCompletionSource done;
        lock (gate)
        {
            var refusal = this.program is null || status.State != WorkloadStates.Running ? $"the workload is {status.State}, not running"
                : migration is { Task.IsCompleted: false } ? $"a {handOver} of this workload is in progress"
                : arrived?.PostCopy is { Completion.IsCompleted: false } ? "pages of the previous (post-copy) migration are still arriving; checkpoint it once they are all here"
                : null;
            if (refusal is not null)
            {
                _ = connection.ReplyAsync(new ControlReply { Ok = false, Error = refusal });
                return;
            }
            program = this.program!;
            // The same guard as a migration: neither a migration nor a stop may start while the guest is being written.
            done = migration = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            handOver = "checkpoint";
            status = status with { State = WorkloadStates.Checkpointing };
            dir.WriteStatus(status);
        }
        ControlReply reply;
        try
        {
            var frozen = await program.FreezeAsync().ConfigureAwait(false);
            var info = WriteCheckpoint(program, frozen);
            // Recorded before the guest is retired: whoever reads the status sees the checkpoint, never a lost workload.
            Update(s => s with
            {
                State = WorkloadStates.Checkpointed,
                Checkpoint = info,
                EndedAt = DateTimeOffset.UtcNow,
                Message = $"checkpointed to {info.Path}",
            });
            program.Retire();
            Log($"checkpointed to {info.Path}: {info.Bytes >> 10} KiB{(info.Sealed ? $", sealed at epoch {info.Epoch}" : "")}; the guest will not run here again");
            reply = new ControlReply { Ok = true, Checkpoint = info, Status = LiveStatus() };
        }
        catch (GuestNotRunningException)
        {
            // The program ended before it reached a safe point: the main thread reports how it ended.
            reply = new ControlReply { Ok = false, Error = "the program ended before it could be checkpointed" };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or WasmException or ConfidentialException or CheckpointException)
        {
            reply = new ControlReply { Ok = false, Error = ResumeAfterFailedCheckpoint(program, e) };
        }
        var delivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        resultDelivered = delivered.Task;
        done.TrySetResult();
        await connection.ReplyAsync(reply).ConfigureAwait(false);
        delivered.TrySetResult();
    }

    /// <summary>
    /// Writes the frozen guest to DIR/checkpoint.ferry (through a temporary file renamed into place, so a reader sees no
    /// file or a whole one). A confidential guest is sealed as it is written: its plaintext never reaches the disk.
    /// </summary>
    private CheckpointInfo WriteCheckpoint(GuestProgram program, FrozenGuest frozen)
    {
        var path = dir.Checkpoint;
        var temp = $"{path}.tmp-{Environment.ProcessId}";
        var metadata = CheckpointMetadata(frozen);
        ulong? sealedEpoch = null;
        long bytes;
        try
        {
            // Owner-only: a plain snapshot holds the guest's memory in clear.
            var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, BufferSize = 1 << 20 };
            if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var file = new FileStream(temp, create))
            {
                if (confidential is { } host && identity is { } id)
                {
                    sealedEpoch = epoch + 1;
                    using var sealer = SealedCheckpoint.Create(file, CheckpointKeyWrap.ToPlatform(host.Tee), id, sealedEpoch.Value, leaveOpen: true);
                    SnapshotWriter.Write(sealer, program.Instance, frozen.Frames, program.Environment.CaptureState(), metadata, spec.ModuleName, includeModule: true);
                    sealer.Complete();
                }
                else
                {
                    SnapshotWriter.Write(file, program.Instance, frozen.Frames, program.Environment.CaptureState(), metadata, spec.ModuleName, includeModule: true);
                }
                file.Flush(flushToDisk: true);
                bytes = file.Length;
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        return new CheckpointInfo
        {
            Path = path,
            Bytes = bytes,
            Sealed = sealedEpoch is not null,
            Epoch = sealedEpoch,
            Measurement = sealedEpoch is null || measurement is null ? null : Convert.ToHexStringLower(measurement),
            MemoryBytes = MemoryBytes,
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    private Dictionary<string, string> CheckpointMetadata(FrozenGuest frozen)
    {
        var metadata = new Dictionary<string, string>
        {
            ["created"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["host"] = Environment.MachineName,
            ["ferry"] = CommandCatalog.Version,
            ["freeze_latency_ms"] = frozen.FreezeLatency.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture),
            // Informational only: nothing in the snapshot depends on the CPU that wrote it.
            ["cpu"] = Hosting.HostCpu.Describe(),
            [LaunchKeys.Id] = spec.Id,
            [LaunchKeys.Name] = spec.Name,
            [LaunchKeys.Module] = spec.ModuleName,
            [LaunchKeys.Args] = JsonSerializer.Serialize(spec.Args),
            [LaunchKeys.Env] = JsonSerializer.Serialize(spec.Env),
            [LaunchKeys.Host] = Environment.GetEnvironmentVariable(Agent.Workloads.RuntimeProcesses.AgentNameVariable) ?? Environment.MachineName,
        };
        if (spec.MemoryLimitBytes is { } limit) metadata[LaunchKeys.MemoryLimit] = limit.ToString(CultureInfo.InvariantCulture);
        return metadata;
    }

    /// <summary>
    /// A checkpoint failed after the guest was frozen. A plain guest simply continues. A confidential one may have left a
    /// complete sealed checkpoint at epoch e+1 behind (the failure may come after the last chunk, or a copy may have been
    /// taken of the temporary file): it continues only under epoch e+2, recorded first, which makes any such file stale on
    /// this host. If even that cannot be recorded, the guest is stopped rather than risk two copies. Returns the error
    /// for the operator.
    /// </summary>
    private string ResumeAfterFailedCheckpoint(GuestProgram program, Exception why)
    {
        Log($"checkpoint failed: {why.Message}");
        if (confidential is { } host && identity is { } id)
        {
            string? refused;
            try
            {
                refused = host.Epochs.TryAccept(id, epoch + 2) ? null : $"the epoch store already holds a later epoch than {epoch + 2}";
            }
            catch (ConfidentialException e)
            {
                refused = e.Message;
            }
            if (refused is not null)
            {
                program.Retire();
                var message = $"checkpoint failed ({why.Message}) and the workload was stopped: a sealed checkpoint may exist, and its epoch could not be made stale here ({refused})";
                Log(message);
                Update(s => s with { State = WorkloadStates.Failed, ExitCode = 1, EndedAt = DateTimeOffset.UtcNow, Message = message });
                return message;
            }
            epoch += 2;
        }
        Update(s => s with { State = s.State == WorkloadStates.Checkpointing ? WorkloadStates.Running : s.State });
        program.Unfreeze();
        return $"checkpoint failed; the workload continues{(identity is null ? "" : $" under epoch {epoch}")}: {why.Message}";
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    // ---- restoring ----

    /// <summary>
    /// Restore mode (`ferry runtime restore --dir DIR`): continue the guest from DIR/restore.ferry, uploaded by the agent.
    /// Reports running, or failed with the reason the checkpoint was refused.
    /// </summary>
    private int Restore()
    {
        IReadOnlyList<FrameRecord> frames;
        string? restoredFrom;
        try
        {
            // Listening first: once a sealed checkpoint's epoch is accepted below, nothing may fail before the guest runs.
            control = new ControlServer(dir.ControlSocket, HandleAsync);
            using var file = new FileStream(dir.RestoreSource, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var start = new byte[SealedCheckpoint.MagicLength];
            var n = file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
            file.Position = 0;
            (program, frames, restoredFrom) = SealedCheckpoint.IsSealed(start.AsSpan(0, n)) ? RestoreSealed(file) : RestorePlain(file);
        }
        catch (Exception e)
        {
            var message = e is WasmException or IOException or UnauthorizedAccessException or ConfidentialException or ConfidentialSetupException or CheckpointException
                ? e.Message
                : $"{e.GetType().Name}: {e.Message}";
            return FailedToStart("cannot restore the checkpoint", message);
        }
        MarkRunning(restoredFrom);
        // The upload has served its purpose (a sealed one is stale on this host from now on); it is as large as the memory.
        TryDelete(dir.RestoreSource);
        Log($"restored {spec.ModuleName} from {restoredFrom}{(identity is null ? "" : $", confidential, epoch {epoch}")}");
        program!.StartFrom(frames);
        return RunToEnd();
    }

    private (GuestProgram, IReadOnlyList<FrameRecord>, string) RestorePlain(Stream file)
    {
        var reader = new SnapshotReader(file);
        var (restored, from) = RestoreSnapshot(reader, expectedMeasurement: null);
        return (restored.Program, restored.Frames, from);
    }

    /// <summary>
    /// A sealed checkpoint: opened with this host's platform key (another host's is refused), its measurement checked
    /// against the module and launch configuration it carries, read to its authenticated end, and only then admitted by
    /// the epoch store (once per epoch: a second restore, or an older checkpoint after a newer one, is refused). The guest
    /// runs only after all of that.
    /// </summary>
    private (GuestProgram, IReadOnlyList<FrameRecord>, string) RestoreSealed(Stream file)
    {
        confidential = ConfidentialHost.Open(dir);
        var claimed = SealedCheckpoint.ReadHeader(file);
        file.Position = 0;
        SealedCheckpointReader reader;
        try
        {
            // The measurement is checked against the module inside (below); unwrapping the key authenticates the header.
            reader = SealedCheckpoint.Open(file, CheckpointKeyWrap.ToPlatform(confidential.Tee), claimed.Identity.Measurement, leaveOpen: true);
        }
        catch (SealedDataException e) when (e.Failure == SealedDataFailure.WrongPlatform)
        {
            throw new CheckpointException(
                $"the checkpoint is sealed to another platform: only the runtime of the host that wrote it can open it, and this is {confidential.AgentName} ({e.Message}); restore it with `ferry restore --on` that host's agent", e);
        }
        using (reader)
        {
            var header = reader.Header;
            // Cheap early refusal before any memory is decrypted; TryAccept below is the authoritative check.
            if (confidential.Epochs.LastAccepted(header.Identity) is { } last && last >= header.Epoch)
            {
                throw Stale(header, last);
            }
            var (restored, from) = RestoreSnapshot(new SnapshotReader(reader), header.Identity.Measurement);
            // SnapshotReader.Finish read past the End record, which drove the sealed reader to its end: the final chunk is
            // verified only now. Nothing was acted on before this point.
            Span<byte> probe = stackalloc byte[1];
            if (reader.Read(probe) != 0 || !reader.IsComplete)
            {
                throw new SealedDataException(SealedDataFailure.Truncated, "the checkpoint did not reach its authenticated end");
            }
            if (!confidential.Epochs.TryAccept(header.Identity, header.Epoch))
            {
                throw Stale(header, confidential.Epochs.LastAccepted(header.Identity) ?? header.Epoch);
            }
            identity = header.Identity;
            epoch = header.Epoch;
            return (restored.Program, restored.Frames, from);
        }
    }

    private static CheckpointException Stale(CheckpointHeader header, ulong last) =>
        new($"stale checkpoint: this host already accepted epoch {last} of workload {header.Identity}, the checkpoint carries epoch {header.Epoch} "
            + "(rollback or fork refused: a sealed checkpoint restores once, and never after a newer state of the same workload)");

    private sealed record RestoredGuest(GuestProgram Program, IReadOnlyList<FrameRecord> Frames);

    /// <summary>
    /// Rebuilds the guest from a snapshot (plain, or the plaintext stream of a sealed checkpoint): the spec from the
    /// launch configuration in its metadata, the module it carries, then globals, tables, frames and memory. For a
    /// sealed checkpoint, <paramref name="expectedMeasurement"/> must equal the measurement of that module and launch
    /// configuration. The guest is compiled with write tracking, so the restored workload can migrate on.
    /// </summary>
    private (RestoredGuest Guest, string From) RestoreSnapshot(SnapshotReader reader, byte[]? expectedMeasurement)
    {
        var h = reader.Header;
        moduleBytes = h.ModuleCode ?? throw new CheckpointException("the checkpoint does not carry its module (it was written without it)");
        var meta = h.Metadata;
        string[] List(string key)
        {
            if (!meta.TryGetValue(key, out var json)) return [];
            try
            {
                return JsonSerializer.Deserialize<string[]>(json) ?? [];
            }
            catch (JsonException e)
            {
                throw new CheckpointException($"the checkpoint's {key} is not a list of strings: {e.Message}");
            }
        }
        ulong? limit = null;
        if (meta.TryGetValue(LaunchKeys.MemoryLimit, out var text))
        {
            limit = ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var l) ? l : throw new CheckpointException($"the checkpoint's {LaunchKeys.MemoryLimit} is not a number: '{text}'");
        }
        var moduleName = meta.GetValueOrDefault(LaunchKeys.Module, h.ModuleName);
        spec = spec with
        {
            Name = spec.Name.Length > 0 ? spec.Name : meta.GetValueOrDefault(LaunchKeys.Name, Path.GetFileNameWithoutExtension(moduleName)),
            ModuleName = moduleName,
            Args = List(LaunchKeys.Args),
            Env = List(LaunchKeys.Env),
            MemoryLimitBytes = limit,
            Confidential = expectedMeasurement is not null,
        };
        if (expectedMeasurement is not null)
        {
            measurement = ConfidentialHost.Measure(moduleBytes, spec);
            if (!CryptographicOperations.FixedTimeEquals(measurement, expectedMeasurement))
            {
                throw new SealedDataException(SealedDataFailure.WrongIdentity,
                    $"the module and launch configuration in the checkpoint measure {Measurement.Short(measurement)}…, its header names {Measurement.Short(expectedMeasurement)}…");
            }
        }
        dir.WriteSpec(spec);
        File.WriteAllBytes(dir.Module, moduleBytes);
        var module = Decode(moduleBytes);
        var environment = GuestEnvironments.Restore(h.Wasi, new WasiOptions());
        var compiled = ModuleCompiler.Compile(module, CompileFor(postCopy: false));
        var linker = new Linker();
        environment.Define(linker);
        var restored = SnapshotRestorer.Restore(reader, compiled, linker, new InstanceOptions { MaxMemoryBytes = spec.MemoryLimitBytes });
        environment.Bind(restored.Instance);
        var from = $"checkpoint of workload {meta.GetValueOrDefault(LaunchKeys.Id, "?")} on {meta.GetValueOrDefault(LaunchKeys.Host, meta.GetValueOrDefault("host", "?"))}"
            + (meta.TryGetValue("created", out var created) ? $" at {created}" : "");
        return (new RestoredGuest(new GuestProgram(restored.Instance, environment), restored.Frames), from);
    }
}
