using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Ferry.Agent.Api;
using Ferry.Wasm;

namespace Ferry.Agent.Workloads;

/// <summary>An error an API call reports to its client with an HTTP status.</summary>
public sealed class AgentRequestException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>The agent's configuration.</summary>
public sealed record AgentOptions
{
    public required string Name { get; init; }
    public required string StateDir { get; init; }
    /// <summary>How to run the ferry CLI, e.g. ["/usr/bin/dotnet", "/path/ferry.dll"]; runtimes are "… runtime MODE --dir DIR".</summary>
    public required IReadOnlyList<string> FerryCommand { get; init; }
    /// <summary>How long to wait for a new runtime to report its first status.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The fleet trust file confidential runtimes attest against (default STATE/trust.json).</summary>
    public string? TrustFile { get; init; }
    /// <summary>Keep one runtime process started and warmed up for the next incoming migration (see <see cref="StandbyRuntime"/>).</summary>
    public bool Standby { get; init; } = true;
    /// <summary>Send traffic through the migration-stream relay once at start, so that its code is compiled before a migration needs it (see <see cref="RelayWarmup"/>).</summary>
    public bool WarmRelay { get; init; } = true;
    /// <summary>
    /// Hand each migration stream's connection to the incoming runtime (<see cref="Streams.HandoffListenerFactory"/>)
    /// instead of relaying its bytes through the agent.
    /// </summary>
    public bool StreamHandoff { get; init; } = true;

    /// <summary>The trust file in effect.</summary>
    public string EffectiveTrustFile => TrustFile ?? Path.Combine(StateDir, "trust.json");
}

/// <summary>
/// The workloads of one agent: their directories under the state dir, their runtime processes (started in
/// their own sessions, re-adopted after an agent restart), incoming migrations and their outcome.
/// </summary>
public sealed partial class WorkloadManager : IDisposable
{
    /// <summary>Unix socket paths are limited to 108 bytes including the terminating NUL.</summary>
    private const int MaxSocketPath = 107;

    private readonly AgentOptions options;
    private readonly object gate = new();

    /// <summary>
    /// Held while a directory moves to the history together with its migration index entry, and while an entry is
    /// read: a reader never sees an index that points at a directory already moved away (a source resolving a lost
    /// acknowledgement would otherwise read "no status" for a destination that is being archived that moment).
    /// </summary>
    private readonly object indexGate = new();
    private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private readonly Task monitor;
    private readonly StandbyRuntime? standby;

    private sealed class Entry(WorkloadDirectory dir, WorkloadSpec spec)
    {
        public WorkloadDirectory Dir { get; } = dir;
        public WorkloadSpec Spec { get; set; } = spec;
        public Process? Child { get; set; }
        public int Pid { get; set; }
    }

    public WorkloadManager(AgentOptions options)
    {
        this.options = options;
        Directory.CreateDirectory(WorkloadsRoot);
        Directory.CreateDirectory(HistoryRoot);
        Directory.CreateDirectory(MigrationsRoot);
        var probe = Path.Combine(WorkloadsRoot, "0123456789abcdef", "control.sock");
        if (System.Text.Encoding.UTF8.GetByteCount(probe) > MaxSocketPath)
        {
            throw new ArgumentException($"the state dir {options.StateDir} is too deep: workload sockets under it would exceed the {MaxSocketPath}-byte Unix socket path limit; use a shorter path");
        }
        Adopt();
        if (options.Standby)
        {
            standby = new StandbyRuntime(options.StateDir, options.FerryCommand, RuntimeEnvironment());
            standby.EnsureStarted();
        }
        monitor = Task.Run(() => MonitorAsync(stopping.Token));
    }

    public string Name => options.Name;
    public string StateDir => options.StateDir;
    private string WorkloadsRoot => Path.Combine(options.StateDir, "workloads");
    private string HistoryRoot => Path.Combine(options.StateDir, "history");
    private string MigrationsRoot => Path.Combine(options.StateDir, "migrations");

    public int Count
    {
        get
        {
            lock (gate) return entries.Count;
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex IdPattern();

    public static bool IsValidId(string id) => IdPattern().IsMatch(id);

    /// <summary>Finds the workloads already in the state dir (an agent restart): live runtimes are adopted as they are.</summary>
    private void Adopt()
    {
        foreach (var path in Directory.EnumerateDirectories(WorkloadsRoot))
        {
            var dir = new WorkloadDirectory(path);
            WorkloadSpec spec;
            try
            {
                spec = dir.ReadSpec();
            }
            catch (InvalidDataException)
            {
                continue;
            }
            var entry = new Entry(dir, spec) { Pid = dir.ReadStatus()?.Pid ?? 0 };
            lock (gate) entries[spec.Id] = entry;
            if (spec.Mode == "incoming" && !RuntimeProcesses.IsAlive(entry.Pid, dir) && !TookOver(dir.ReadStatus())) Archive(entry);
        }
    }

    /// <summary>Watches for incoming runtimes that ended without taking over, and drops them from the list.</summary>
    private async Task MonitorAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(500, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            Entry[] all;
            lock (gate) all = [.. entries.Values];
            foreach (var e in all)
            {
                if (e.Child is { HasExited: true } child)
                {
                    child.Dispose();
                    e.Child = null;
                }
                if (e.Spec.Mode != "incoming" || Alive(e)) continue;
                if (!TookOver(e.Dir.ReadStatus())) Archive(e);
            }
            // The standby yields to migrations (see StandbyRuntime.Hold); a new one starts after one was adopted once
            // nothing migrates to or from here.
            if (standby is not null)
            {
                standby.Hold(Array.Exists(all, Migrating));
                standby.EnsureStarted();
            }
        }
    }

    /// <summary>Is a migration of this workload under way here (leaving, or arriving and not yet taken over)?</summary>
    private static bool Migrating(Entry e)
    {
        if (!Alive(e)) return false;
        var status = e.Dir.ReadStatus();
        return status?.State == WorkloadStates.Migrating || (e.Spec.Mode == "incoming" && !TookOver(status));
    }

    /// <summary>Did an incoming runtime take the workload over (run it with all its pages, or run it to its end)?</summary>
    private static bool TookOver(WorkloadStatus? s) =>
        s is not null && (s.Incoming?.Phase == IncomingPhases.Running
            || s.State is WorkloadStates.Exited or WorkloadStates.Trapped or WorkloadStates.MigratedAway or WorkloadStates.Stopped or WorkloadStates.Checkpointed);

    /// <summary>Moves a workload's directory to the history (it no longer appears in the list).</summary>
    private void Archive(Entry e)
    {
        lock (gate)
        {
            if (entries.TryGetValue(e.Spec.Id, out var current) && current == e) entries.Remove(e.Spec.Id);
        }
        if (!Directory.Exists(e.Dir.Path)) return;
        StandbyRuntime.RemoveLink(e.Dir);
        var target = Path.Combine(HistoryRoot, $"{e.Spec.Id}-{DateTime.UtcNow:yyyyMMddHHmmssfff}-{RandomNumberGenerator.GetHexString(4, true)}");
        lock (indexGate)
        {
            try
            {
                Directory.Move(e.Dir.Path, target);
                if (e.Spec.MigrationId is { } mid) WriteMigrationIndex(mid, e.Spec.Id, target);
            }
            catch (IOException)
            {
                // Another path archived it first.
            }
        }
    }

    private string NewId()
    {
        while (true)
        {
            var id = RandomNumberGenerator.GetHexString(8, lowercase: true);
            lock (gate)
            {
                if (!entries.ContainsKey(id) && !Directory.Exists(Path.Combine(WorkloadsRoot, id))) return id;
            }
        }
    }

    /// <summary>Starts a workload from uploaded module bytes; returns once its runtime reports (running, or why not).</summary>
    public async Task<WorkloadInfo> CreateAsync(CreateWorkloadRequest request, CancellationToken ct)
    {
        byte[] module;
        try
        {
            module = Convert.FromBase64String(request.ModuleBase64);
        }
        catch (FormatException)
        {
            throw new AgentRequestException(400, "moduleBase64 is not valid base64");
        }
        try
        {
            var decoded = Wasm.Binary.ModuleDecoder.Decode(module);
            Wasm.Validation.ModuleValidator.Validate(decoded);
        }
        catch (WasmException e)
        {
            throw new AgentRequestException(400, $"the module is not valid WebAssembly: {e.Message}");
        }
        var moduleName = string.IsNullOrWhiteSpace(request.ModuleName) ? "module.wasm" : Path.GetFileName(request.ModuleName);
        var name = string.IsNullOrWhiteSpace(request.Name) ? Path.GetFileNameWithoutExtension(moduleName) : request.Name.Trim();
        var id = NewId();
        var dir = new WorkloadDirectory(Path.Combine(WorkloadsRoot, id));
        Directory.CreateDirectory(dir.Path);
        await File.WriteAllBytesAsync(dir.Module, module, ct).ConfigureAwait(false);
        var spec = new WorkloadSpec
        {
            Id = id,
            Name = name,
            ModuleName = moduleName,
            Args = request.Args,
            Env = request.Env,
            MemoryLimitBytes = request.MemoryLimitBytes,
            CreatedAt = DateTimeOffset.UtcNow,
            Mode = "launch",
            Confidential = request.Confidential,
        };
        dir.WriteSpec(spec);
        var entry = new Entry(dir, spec);
        StartRuntime(entry, "launch");
        lock (gate) entries[id] = entry;
        var status = await WaitForStatusAsync(entry, s => s is not null, ct).ConfigureAwait(false);
        if (status!.State == WorkloadStates.Failed) throw new AgentRequestException(422, $"the workload could not start: {status.Message}");
        return Info(entry);
    }

    /// <summary>
    /// Is the entry's runtime alive? A child this agent started counts until it has been reaped (while it
    /// execs from sh to setsid to dotnet its command line may briefly read empty); an adopted one by /proc.
    /// </summary>
    private static bool Alive(Entry e)
    {
        if (e.Child is { } child)
        {
            try
            {
                if (!child.HasExited) return true;
            }
            catch (InvalidOperationException)
            {
            }
        }
        return RuntimeProcesses.IsAlive(e.Pid, e.Dir);
    }

    private void StartRuntime(Entry entry, string mode)
    {
        var child = RuntimeProcesses.Start(options.FerryCommand, mode, entry.Dir, RuntimeEnvironment());
        entry.Child = child;
        entry.Pid = child.Id;
    }

    private Dictionary<string, string> RuntimeEnvironment() => new()
    {
        [RuntimeProcesses.StateDirVariable] = options.StateDir,
        [RuntimeProcesses.TrustFileVariable] = options.EffectiveTrustFile,
        [RuntimeProcesses.AgentNameVariable] = options.Name,
    };

    /// <summary>Waits (bounded) until the runtime's status satisfies <paramref name="done"/>, or the runtime dies.</summary>
    private async Task<WorkloadStatus?> WaitForStatusAsync(Entry entry, Func<WorkloadStatus?, bool> done, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var status = entry.Dir.ReadStatus();
            if (status is not null && status.Pid == entry.Pid && done(status)) return status;
            if (!Alive(entry))
            {
                status = entry.Dir.ReadStatus();
                if (status is not null && status.Pid == entry.Pid && done(status)) return status;
                throw new AgentRequestException(500, $"the runtime process (pid {entry.Pid}) exited during start-up: {Tail(entry.Dir.Stderr)}");
            }
            if (sw.Elapsed > options.StartTimeout)
            {
                throw new AgentRequestException(504, $"the runtime process (pid {entry.Pid}) did not report within {options.StartTimeout.TotalSeconds:0} s");
            }
            await Task.Delay(10, ct).ConfigureAwait(false);
        }
    }

    private static string Tail(string file)
    {
        try
        {
            var text = File.ReadAllText(file).Trim();
            return text.Length == 0 ? "(no output)" : text.Length > 2000 ? "…" + text[^2000..] : text;
        }
        catch (IOException)
        {
            return "(no output)";
        }
    }

    public WorkloadInfo[] List()
    {
        Entry[] all;
        lock (gate) all = [.. entries.Values];
        return [.. all.Select(Info).OrderBy(w => w.StartedAt ?? DateTimeOffset.MaxValue).ThenBy(w => w.Id, StringComparer.Ordinal)];
    }

    private Entry Find(string id)
    {
        lock (gate)
        {
            if (entries.TryGetValue(id, out var e)) return e;
        }
        throw new AgentRequestException(404, $"no workload '{id}' on agent {options.Name}");
    }

    public WorkloadInfo Get(string id) => Info(Find(id));

    /// <summary>The log file of a workload and whether its runtime may still write to it.</summary>
    public (string Path, Func<bool> Alive) Log(string id, string stream)
    {
        var e = Find(id);
        var path = stream switch
        {
            "stdout" => e.Dir.Stdout,
            "stderr" => e.Dir.Stderr,
            _ => throw new AgentRequestException(400, $"unknown log stream '{stream}' (stdout or stderr)"),
        };
        return (path, () => Alive(e));
    }

    private WorkloadInfo Info(Entry e)
    {
        var status = e.Dir.ReadStatus();
        var alive = Alive(e);
        var state = status?.State ?? (alive ? "starting" : WorkloadStates.Lost);
        string? message = status?.Message;
        if (!alive && !WorkloadStates.IsFinal(state))
        {
            message = $"the runtime process (pid {e.Pid}) died in state {state} without reporting (killed?)";
            state = WorkloadStates.Lost;
        }
        var started = status?.StartedAt;
        var end = WorkloadStates.IsFinal(state) ? status?.EndedAt ?? DateTimeOffset.UtcNow : DateTimeOffset.UtcNow;
        return new WorkloadInfo
        {
            Id = e.Spec.Id,
            Name = e.Spec.Name,
            State = state,
            Host = options.Name,
            Pid = e.Pid,
            MemoryBytes = status?.MemoryBytes ?? 0,
            MemoryLimitBytes = e.Spec.MemoryLimitBytes,
            StartedAt = started,
            UptimeSeconds = started is { } s ? Math.Max(0, (end - s).TotalSeconds) : 0,
            ExitCode = status?.ExitCode,
            Message = message,
            ModuleName = e.Spec.ModuleName,
            Args = e.Spec.Args,
            MigratedTo = status?.MigratedTo,
            MigratedFrom = status?.MigratedFrom,
            // Set by the runtime while it migrates (even if the program ends meanwhile), cleared with the outcome.
            Migrating = alive ? status?.Migrating : null,
            LastMigration = status?.LastMigration,
            Confidential = e.Spec.Confidential || status?.Confidential == true,
            Measurement = status?.Measurement,
            Checkpoint = status?.Checkpoint,
            RestoredFrom = status?.RestoredFrom,
        };
    }

    /// <summary>Stops a running workload (through its runtime; killed if it does not answer).</summary>
    public async Task<WorkloadInfo> StopAsync(string id, CancellationToken ct)
    {
        var e = Find(id);
        if (!Alive(e)) return Info(e);
        ControlReply? reply = null;
        try
        {
            reply = await ControlClient.RequestAsync(e.Dir.ControlSocket, new ControlRequest { Op = "stop" }, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        }
        catch (Exception x) when (x is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            // Not answering: kill it below.
        }
        if (reply is { Ok: false }) throw new AgentRequestException(409, reply.Error ?? "the runtime refused to stop");
        var sw = Stopwatch.StartNew();
        while (Alive(e) && sw.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10, ct).ConfigureAwait(false);
        if (Alive(e))
        {
            await RuntimeProcesses.KillAsync(e.Pid, e.Dir, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            var status = e.Dir.ReadStatus();
            if (status is not null && !WorkloadStates.IsFinal(status.State))
            {
                e.Dir.WriteStatus(status with { State = WorkloadStates.Stopped, ExitCode = 137, EndedAt = DateTimeOffset.UtcNow, Message = "killed by the agent (the runtime did not stop when asked)" });
            }
        }
        return Info(e);
    }

    /// <summary>Opens the runtime's control socket and sends it a migrate request; the caller relays its event lines.</summary>
    public async Task<ControlClient> StartMigrationAsync(string id, MigrateRequest request, CancellationToken ct)
    {
        var e = Find(id);
        var info = Info(e);
        if (info.State != WorkloadStates.Running)
        {
            throw new AgentRequestException(409, $"workload {id} is {info.State}{(info.MigratedTo is { } to ? $" (to {to})" : "")}; only a running workload can be migrated");
        }
        // At once, not at the monitor's next look: the standby must not compete with this migration's switch-over.
        standby?.Hold(true);
        try
        {
            var client = await ControlClient.ConnectAsync(e.Dir.ControlSocket, ct).ConfigureAwait(false);
            await client.SendAsync(new ControlRequest { Op = "migrate", Migrate = request }, ct).ConfigureAwait(false);
            return client;
        }
        catch (Exception x) when (x is IOException or System.Net.Sockets.SocketException)
        {
            throw new AgentRequestException(503, $"cannot reach the runtime of workload {id}: {x.Message}");
        }
    }

    // ---- Checkpoints ----

    /// <summary>How long a runtime may take to freeze its guest and write its checkpoint (GiBs of memory, sealed on one core).</summary>
    private static readonly TimeSpan CheckpointTimeout = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Asks a running workload's runtime to freeze the guest at a safe point and write a checkpoint into the workload's
    /// directory (sealed to this host for a confidential workload). The guest never runs here again: the runtime exits,
    /// and this returns once it has, so the list shows the workload checkpointed rather than a live process.
    /// </summary>
    public async Task<WorkloadInfo> CheckpointAsync(string id, CancellationToken ct)
    {
        var e = Find(id);
        var info = Info(e);
        if (info.State != WorkloadStates.Running)
        {
            throw new AgentRequestException(409, $"workload {id} is {info.State}; only a running workload can be checkpointed");
        }
        ControlReply reply;
        try
        {
            reply = await ControlClient.RequestAsync(e.Dir.ControlSocket, new ControlRequest { Op = "checkpoint" }, CheckpointTimeout, ct).ConfigureAwait(false);
        }
        catch (Exception x) when (x is IOException or System.Net.Sockets.SocketException)
        {
            throw new AgentRequestException(503, $"cannot reach the runtime of workload {id}: {x.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new AgentRequestException(504, $"the runtime of workload {id} did not finish its checkpoint within {CheckpointTimeout.TotalMinutes:0} min");
        }
        if (!reply.Ok) throw new AgentRequestException(409, $"workload {id} was not checkpointed: {reply.Error}");
        var sw = Stopwatch.StartNew();
        while (Alive(e) && sw.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(10, ct).ConfigureAwait(false);
        return Info(e);
    }

    /// <summary>The checkpoint file of a checkpointed workload (for download).</summary>
    public string CheckpointFile(string id)
    {
        var e = Find(id);
        var status = e.Dir.ReadStatus();
        if (status?.State != WorkloadStates.Checkpointed || !File.Exists(e.Dir.Checkpoint))
        {
            throw new AgentRequestException(404, $"workload {id} on agent {options.Name} has no checkpoint (it is {Info(e).State}; `ferry checkpoint` writes one)");
        }
        return e.Dir.Checkpoint;
    }

    /// <summary>
    /// Starts a workload from an uploaded checkpoint (a plain snapshot or a sealed checkpoint): the runtime, in restore
    /// mode, opens it, checks it and continues the guest. Returns once the guest runs; a checkpoint the runtime refuses
    /// (sealed elsewhere, tampered, already restored) is answered with the runtime's reason and leaves no workload.
    /// </summary>
    public async Task<WorkloadInfo> RestoreAsync(Stream body, string? name, CancellationToken ct)
    {
        var id = NewId();
        var dir = new WorkloadDirectory(Path.Combine(WorkloadsRoot, id));
        Directory.CreateDirectory(dir.Path);
        bool sealedCheckpoint;
        try
        {
            // Owner-only: a plain snapshot holds the guest's memory in clear.
            var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, BufferSize = 1 << 20 };
            if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            await using var file = new FileStream(dir.RestoreSource, create);
            await body.CopyToAsync(file, ct).ConfigureAwait(false);
            file.Position = 0;
            var magic = new byte[8];
            var n = await file.ReadAtLeastAsync(magic, magic.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            sealedCheckpoint = Enclave.Confidential.SealedCheckpoint.IsSealed(magic.AsSpan(0, n));
            if (!(sealedCheckpoint || magic.AsSpan(0, n).StartsWith(Wasm.Snapshots.SnapshotFormat.Magic)))
            {
                throw new AgentRequestException(400, "the upload is not a Ferry checkpoint (neither a snapshot nor a sealed checkpoint)");
            }
        }
        catch (Exception x) when (x is AgentRequestException or IOException or OperationCanceledException)
        {
            try
            {
                Directory.Delete(dir.Path, recursive: true);
            }
            catch (IOException)
            {
            }
            if (x is IOException io) throw new AgentRequestException(400, $"cannot receive the checkpoint: {io.Message}");
            throw;
        }
        // The runtime completes the spec from the checkpoint (module name, arguments, environment, memory limit).
        var spec = new WorkloadSpec
        {
            Id = id,
            Name = string.IsNullOrWhiteSpace(name) ? "" : name.Trim(),
            CreatedAt = DateTimeOffset.UtcNow,
            Mode = "restore",
            Confidential = sealedCheckpoint,
        };
        dir.WriteSpec(spec);
        var entry = new Entry(dir, spec);
        StartRuntime(entry, "restore");
        lock (gate) entries[id] = entry;
        var status = await WaitForStatusAsync(entry, s => s is not null, ct).ConfigureAwait(false);
        try
        {
            entry.Spec = dir.ReadSpec();
        }
        catch (InvalidDataException)
        {
        }
        if (status!.State == WorkloadStates.Failed)
        {
            // A refused checkpoint never became a workload: keep its directory (and the upload) in the history only.
            Archive(entry);
            throw new AgentRequestException(422, $"the checkpoint was not restored: {status.Message}");
        }
        return Info(entry);
    }

    // ---- Destination side ----

    /// <summary>migrations/ID holds ["workload id", "directory"] of each incoming migration (the directory moves when archived).</summary>
    /// <remarks>Written beside and renamed over the old entry: a reader sees the old or the new one, never a part.</remarks>
    private void WriteMigrationIndex(string migrationId, string workloadId, string dir)
    {
        var path = Path.Combine(MigrationsRoot, migrationId);
        var temp = $"{path}.{RandomNumberGenerator.GetHexString(8, true)}.tmp";
        lock (indexGate)
        {
            File.WriteAllText(temp, JsonSerializer.Serialize(new[] { workloadId, dir }));
            File.Move(temp, path, overwrite: true);
        }
    }

    private (string WorkloadId, WorkloadDirectory Dir)? ReadMigrationIndex(string migrationId)
    {
        if (!Guid.TryParse(migrationId, out var guid)) return null;
        try
        {
            string text;
            lock (indexGate) text = File.ReadAllText(Path.Combine(MigrationsRoot, guid.ToString()));
            var parts = JsonSerializer.Deserialize<string[]>(text);
            return parts is [var id, var dir] ? (id, new WorkloadDirectory(dir)) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// An incoming migration's directory and its runtime's status, read so that an archive moving the directory in
    /// between cannot make a runtime that took over look like one that never started: the status is read again at
    /// the directory's new place.
    /// </summary>
    private async Task<(string WorkloadId, WorkloadDirectory Dir, WorkloadStatus? Status, bool Alive)> ReadIncomingAsync(string migrationId, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var (workloadId, dir) = ReadMigrationIndex(migrationId) ?? throw new AgentRequestException(404, $"no migration {migrationId} on agent {options.Name}");
            var (status, alive) = await LiveStatusAsync(dir, ct).ConfigureAwait(false);
            // A directory is archived at most once, so one more reading sees it settled.
            if (status is not null || Directory.Exists(dir.Path) || attempt == 1) return (workloadId, dir, status, alive);
        }
    }

    /// <summary>Starts a runtime in incoming mode for a migration; returns once it accepts the streams.</summary>
    public async Task<PrepareMigrationResponse> PrepareIncomingAsync(PrepareMigrationRequest request, CancellationToken ct)
    {
        if (!Guid.TryParse(request.MigrationId, out _)) throw new AgentRequestException(400, "migrationId must be a GUID");
        if (!IsValidId(request.WorkloadId)) throw new AgentRequestException(400, $"invalid workload id '{request.WorkloadId}'");
        if (request.Streams is < 1 or > 64) throw new AgentRequestException(400, "streams must be 1..64");
        Entry? old;
        lock (gate) entries.TryGetValue(request.WorkloadId, out old);
        if (old is not null)
        {
            if (Alive(old) && old.Dir.ReadStatus() is { } s && WorkloadStates.IsFinal(s.State))
            {
                // An earlier copy that has just finished here (it migrated away, say) may still be exiting.
                var sw = Stopwatch.StartNew();
                while (Alive(old) && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(20, ct).ConfigureAwait(false);
                if (Alive(old)) await RuntimeProcesses.KillAsync(old.Pid, old.Dir, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            if (Alive(old))
            {
                throw new AgentRequestException(409, $"workload {request.WorkloadId} already has a live runtime on agent {options.Name} ({Info(old).State})");
            }
            // An earlier incarnation (e.g. it migrated away from here before): keep it in the history.
            Archive(old);
        }
        var dir = new WorkloadDirectory(Path.Combine(WorkloadsRoot, request.WorkloadId));
        if (Directory.Exists(dir.Path)) Archive(new Entry(dir, new WorkloadSpec { Id = request.WorkloadId, Name = request.Name, Mode = "incoming" }));
        var spec = new WorkloadSpec
        {
            Id = request.WorkloadId,
            Name = request.Name,
            Mode = "incoming",
            MigrationId = request.MigrationId,
            Streams = request.Streams,
            From = request.From,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        var entry = new Entry(dir, spec);
        if (standby is not null && await standby.TryAdoptAsync(dir, spec, ct).ConfigureAwait(false) is { } adopted)
        {
            entry.Child = adopted;
            entry.Pid = adopted.Id;
        }
        else
        {
            Directory.CreateDirectory(dir.Path);
            dir.WriteSpec(spec);
            StartRuntime(entry, "incoming");
        }
        WriteMigrationIndex(request.MigrationId, request.WorkloadId, dir.Path);
        lock (gate) entries[request.WorkloadId] = entry;
        var status = await WaitForStatusAsync(entry, s => s is not null, ct).ConfigureAwait(false);
        if (status!.State != WorkloadStates.Incoming) throw new AgentRequestException(500, $"the incoming runtime did not start: {status.Message}");
        return new PrepareMigrationResponse(request.MigrationId, request.WorkloadId, entry.Pid);
    }

    /// <summary>The data socket of an incoming migration's runtime (for the stream proxy).</summary>
    public string? DataSocketOf(string migrationId)
    {
        var dir = ReadMigrationIndex(migrationId)?.Dir;
        return dir is null || !File.Exists(dir.DataSocket) ? null : dir.DataSocket;
    }

    /// <summary>Where an incoming migration is (live figures from its runtime when it is up).</summary>
    public async Task<MigrationInfo> MigrationAsync(string migrationId, CancellationToken ct)
    {
        var (workloadId, dir, status, alive) = await ReadIncomingAsync(migrationId, ct).ConfigureAwait(false);
        var phase = status?.Incoming?.Phase ?? IncomingPhases.Waiting;
        if (!alive && !TookOver(status)) phase = IncomingPhases.Failed;
        return new MigrationInfo
        {
            MigrationId = migrationId,
            WorkloadId = workloadId,
            Phase = phase,
            Pid = status?.Pid ?? 0,
            Alive = alive,
            Error = status?.Incoming?.Error ?? (alive ? null : status?.Message),
            PostCopyFaults = status?.Incoming?.PostCopyFaults ?? 0,
            FaultLatency = status?.Incoming?.FaultLatency,
        };
    }

    private static async Task<(WorkloadStatus? Status, bool Alive)> LiveStatusAsync(WorkloadDirectory dir, CancellationToken ct)
    {
        var status = dir.ReadStatus();
        var alive = status is not null && RuntimeProcesses.IsAlive(status.Pid, dir);
        if (!alive) return (status, false);
        try
        {
            var reply = await ControlClient.RequestAsync(dir.ControlSocket, new ControlRequest { Op = "status" }, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
            if (reply.Status is not null) return (reply.Status, true);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
        }
        return (dir.ReadStatus(), RuntimeProcesses.IsAlive(status!.Pid, dir));
    }

    /// <summary>
    /// The source lost the destination's acknowledgement after commit and asks who has the workload. If this
    /// destination took it over (runs it with every page, or ran it to its end) the answer is "running".
    /// Otherwise the runtime is killed first — so it can never start later — and the answer is "failed": the
    /// source, which still holds the complete frozen state, resumes. Idempotent.
    /// </summary>
    public async Task<ResolveResponse> ResolveAsync(string migrationId, CancellationToken ct)
    {
        var (_, dir, status, alive) = await ReadIncomingAsync(migrationId, ct).ConfigureAwait(false);
        if (TookOver(status) && (alive || WorkloadStates.IsFinal(status!.State)))
        {
            return new ResolveResponse("running", $"the workload runs on agent {options.Name} (state {status!.State})");
        }
        // A confidential source cannot take this agent's word for it (resuming could fork the workload): a runtime
        // still alive is asked to discard the state for good and hand out its enclave's sealed proof; one that
        // already failed left the proof in its status.
        var proof = status?.Incoming?.DiscardProof;
        if (alive && proof is null && status?.Confidential == true)
        {
            try
            {
                var reply = await ControlClient.RequestAsync(dir.ControlSocket, new ControlRequest { Op = "discard" }, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
                if (reply.Status is not null && TookOver(reply.Status))
                {
                    return new ResolveResponse("running", $"the workload runs on agent {options.Name} (state {reply.Status.State})");
                }
                proof = reply.DiscardProof;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or TimeoutException)
            {
                // No proof: the source stays stopped rather than risk two copies.
            }
        }
        Entry? entry;
        lock (gate) entry = entries.Values.FirstOrDefault(e => e.Dir.Path == dir.Path);
        var pid = status?.Pid ?? entry?.Pid ?? 0;
        if (!await RuntimeProcesses.KillAsync(pid, dir, TimeSpan.FromSeconds(10)).ConfigureAwait(false))
        {
            throw new AgentRequestException(500, $"could not kill the incoming runtime (pid {pid})");
        }
        // Read before archiving: archiving moves the directory, and a runtime that failed on its own (its stream was
        // cut) may have published its proof only after the first read above and exited before the discard request.
        proof ??= dir.ReadStatus()?.Incoming?.DiscardProof;
        if (entry is not null) Archive(entry);
        return new ResolveResponse("failed", $"the destination had not taken over (phase {status?.Incoming?.Phase ?? "unknown"}); its runtime was stopped", proof);
    }

    public void Dispose()
    {
        standby?.Dispose();
        stopping.Cancel();
        try
        {
            monitor.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
        stopping.Dispose();
    }
}
