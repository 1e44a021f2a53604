using System.Text.Json;
using System.Text.Json.Serialization;
using Ferry.Migration;
using Ferry.Migration.Protocol;

namespace Ferry.Agent.Api;

/// <summary>Workload states, as written to status.json by the runtime and reported by the agent.</summary>
public static class WorkloadStates
{
    /// <summary>Destination only: a runtime waits for (or receives) a migration; the guest does not run here yet.</summary>
    public const string Incoming = "incoming";
    public const string Running = "running";
    /// <summary>The guest runs (or is frozen) while a migration to another host is in progress.</summary>
    public const string Migrating = "migrating";
    public const string Exited = "exited";
    public const string Trapped = "trapped";
    /// <summary>The runtime failed (a host error, not the program's); see the message.</summary>
    public const string Failed = "failed";
    /// <summary>The guest now runs on another host (see migratedTo); this copy will never run again.</summary>
    public const string MigratedAway = "migrated-away";
    /// <summary>Stopped by an operator.</summary>
    public const string Stopped = "stopped";
    /// <summary>The guest is frozen while its runtime writes a checkpoint (`ferry checkpoint`).</summary>
    public const string Checkpointing = "checkpointing";
    /// <summary>The guest was frozen and written to a checkpoint (see checkpoint); this copy will never run again.</summary>
    public const string Checkpointed = "checkpointed";
    /// <summary>Agent's view: the runtime process died without reporting how (killed).</summary>
    public const string Lost = "lost";

    public static bool IsFinal(string state) => state is Exited or Trapped or Failed or MigratedAway or Stopped or Lost or Checkpointed;
}

/// <summary>Destination phases of an incoming migration (status.json's incoming.phase).</summary>
public static class IncomingPhases
{
    public const string Waiting = "waiting";
    public const string Receiving = "receiving";
    public const string Ready = "ready";
    /// <summary>The guest runs here; for post-copy, pages are still arriving.</summary>
    public const string PostCopy = "postcopy";
    /// <summary>The guest runs here and every page has arrived: the destination has taken over.</summary>
    public const string Running = "running";
    public const string Failed = "failed";
}

/// <summary>What a workload is (spec.json in its directory; written by the agent, completed by an incoming runtime).</summary>
public sealed record WorkloadSpec
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    /// <summary>The module's file name as the operator gave it (argv[0] of a WASI program).</summary>
    public string ModuleName { get; set; } = "module.wasm";
    public string[] Args { get; set; } = [];
    public string[] Env { get; set; } = [];
    public ulong? MemoryLimitBytes { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    /// <summary>"launch" (start the module), "incoming" (receive a migration) or "restore" (continue from an uploaded checkpoint).</summary>
    public required string Mode { get; init; }
    /// <summary>Incoming: the migration and how many streams it opens.</summary>
    public string? MigrationId { get; init; }
    public int Streams { get; init; }
    /// <summary>Incoming: the source's agent (informational).</summary>
    public string? From { get; init; }
    /// <summary>Launch: run as a confidential workload (measured; migrates only sealed, to attested runtimes).</summary>
    public bool Confidential { get; init; }
}

/// <summary>How the last migration of a workload (as its source) ended.</summary>
public sealed record MigrationOutcome
{
    public required string RequestId { get; init; }
    public string? MigrationId { get; init; }
    public required string To { get; init; }
    public required bool Succeeded { get; init; }
    public string? Error { get; init; }
    /// <summary>After a failure: does the workload continue on the source?</summary>
    public bool SourceResumed { get; init; }
    /// <summary>The program ended (exited, trapped) on the source before it could be moved.</summary>
    public bool WorkloadEnded { get; init; }
    public MigrationReport? Report { get; init; }
    public DateTimeOffset EndedAt { get; init; }
}

/// <summary>A migration in progress (status.json while migrating).</summary>
public sealed record MigrationInProgress
{
    public required string RequestId { get; init; }
    public string? MigrationId { get; init; }
    public required string To { get; init; }
    public required string Strategy { get; init; }
    public required string Tracking { get; init; }
    public DateTimeOffset StartedAt { get; init; }
}

/// <summary>Destination side: where an incoming migration is and what it measured.</summary>
public sealed record IncomingMigration
{
    public required string MigrationId { get; init; }
    public required string Phase { get; init; }
    public string? Error { get; init; }
    public string? Strategy { get; init; }
    public long PostCopyFaults { get; init; }
    public FaultLatency? FaultLatency { get; init; }
    public long PendingPages { get; init; }
    /// <summary>
    /// Confidential migrations that failed here before the commit was accepted: the destination runtime's sealed proof
    /// (base64) that it discarded the state and will never run it (only the source runtime can check it).
    /// </summary>
    public string? DiscardProof { get; init; }
}

/// <summary>status.json: written atomically by the runtime process whenever something changes.</summary>
public sealed record WorkloadStatus
{
    public required string State { get; init; }
    public int Pid { get; init; }
    public int? ExitCode { get; init; }
    public string? Message { get; init; }
    public ulong MemoryBytes { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? EndedAt { get; init; }
    public string? MigratedTo { get; init; }
    public string? MigratedFrom { get; init; }
    public MigrationInProgress? Migrating { get; init; }
    public MigrationOutcome? LastMigration { get; init; }
    public IncomingMigration? Incoming { get; init; }
    /// <summary>Confidential workloads: true, with the measurement (hex SHA-256 over module and launch config).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Confidential { get; init; }
    public string? Measurement { get; init; }
    /// <summary>The checkpoint this runtime wrote (state checkpointed).</summary>
    public CheckpointInfo? Checkpoint { get; init; }
    /// <summary>Restored workloads: which checkpoint they continue (workload, host, time it was taken).</summary>
    public string? RestoredFrom { get; init; }
}

/// <summary>A checkpoint a runtime wrote into its workload directory (`ferry checkpoint`, docs/confidential.md).</summary>
public sealed record CheckpointInfo
{
    /// <summary>The file on the agent's host.</summary>
    public required string Path { get; init; }
    public long Bytes { get; init; }
    /// <summary>A sealed checkpoint (confidential workload) rather than a plain snapshot.</summary>
    public bool Sealed { get; init; }
    /// <summary>Sealed checkpoints: the epoch sealed into it; a host restores it only if this epoch is new to it.</summary>
    public ulong? Epoch { get; init; }
    /// <summary>Sealed checkpoints: the workload's measurement (hex).</summary>
    public string? Measurement { get; init; }
    public ulong MemoryBytes { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A workload as the HTTP API reports it.</summary>
public sealed record WorkloadInfo
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string State { get; init; }
    /// <summary>The agent (host) reporting it.</summary>
    public required string Host { get; init; }
    public int Pid { get; init; }
    public ulong MemoryBytes { get; init; }
    public ulong? MemoryLimitBytes { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public double UptimeSeconds { get; init; }
    public int? ExitCode { get; init; }
    public string? Message { get; init; }
    public string ModuleName { get; init; } = "";
    public string[] Args { get; init; } = [];
    public string? MigratedTo { get; init; }
    public string? MigratedFrom { get; init; }
    public MigrationInProgress? Migrating { get; init; }
    public MigrationOutcome? LastMigration { get; init; }
    public bool Confidential { get; init; }
    /// <summary>Confidential workloads: the measurement (hex).</summary>
    public string? Measurement { get; init; }
    /// <summary>Checkpointed workloads: the checkpoint (GET /v1/workloads/{id}/checkpoint downloads it).</summary>
    public CheckpointInfo? Checkpoint { get; init; }
    /// <summary>Restored workloads: which checkpoint they continue.</summary>
    public string? RestoredFrom { get; init; }
}

/// <summary>POST /v1/workloads.</summary>
public sealed record CreateWorkloadRequest
{
    public string? Name { get; init; }
    /// <summary>The module's file name (argv[0]); defaults to "module.wasm".</summary>
    public string? ModuleName { get; init; }
    public required string ModuleBase64 { get; init; }
    public string[] Args { get; set; } = [];
    public string[] Env { get; set; } = [];
    public ulong? MemoryLimitBytes { get; init; }
    /// <summary>Run as a confidential workload (docs/confidential.md).</summary>
    public bool Confidential { get; init; }
}

/// <summary>POST /v1/workloads/{id}/migrations (and the runtime's control request "migrate").</summary>
public sealed record MigrateRequest
{
    /// <summary>The destination agent's URL: every byte of the migration goes through it.</summary>
    public required string To { get; init; }
    // Optional members are settable so that JSON without them keeps these defaults.
    public string Strategy { get; set; } = "precopy";
    public string Tracking { get; set; } = "compiler";
    public double DowntimeTargetMs { get; set; } = 20;
    /// <summary>Parallel page streams (besides the control stream).</summary>
    public int Streams { get; set; } = 4;
    public int? MaxRounds { get; init; }
    /// <summary>Pre-copy: throttle a guest whose rounds do not shrink (MigrationOptions.AutoConverge).</summary>
    public bool AutoConverge { get; set; } = true;
    /// <summary>Chosen by the client so it can find the outcome again if it loses the source agent.</summary>
    public string? RequestId { get; init; }
    /// <summary>The source agent (filled in by it; the destination shows it as migratedFrom).</summary>
    public string? From { get; init; }
}

/// <summary>One line of a migration's NDJSON event stream: "accepted", "started", "progress", then "result".</summary>
public sealed record MigrationEvent
{
    public required string Event { get; init; }
    public string? RequestId { get; init; }
    public string? MigrationId { get; init; }
    public string? Phase { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Round { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long PagesSent { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long PagesPlanned { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long BytesSent { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public ulong MemoryBytes { get; init; }
    public bool? Ok { get; init; }
    public string? Error { get; init; }
    public bool? SourceResumed { get; init; }
    public bool? WorkloadEnded { get; init; }
    public MigrationReport? Report { get; init; }
}

/// <summary>POST /v1/migrations (destination agent): prepare a runtime to receive a migration.</summary>
public sealed record PrepareMigrationRequest
{
    public required string MigrationId { get; init; }
    public required string WorkloadId { get; init; }
    public required string Name { get; init; }
    public required int Streams { get; init; }
    public string? From { get; init; }
}

public sealed record PrepareMigrationResponse(string MigrationId, string WorkloadId, int Pid);

/// <summary>GET /v1/migrations/{id} (destination agent).</summary>
public sealed record MigrationInfo
{
    public required string MigrationId { get; init; }
    public required string WorkloadId { get; init; }
    /// <summary>An <see cref="IncomingPhases"/> value, or "unknown".</summary>
    public required string Phase { get; init; }
    public int Pid { get; init; }
    public bool Alive { get; init; }
    public string? Error { get; init; }
    public long PostCopyFaults { get; init; }
    public FaultLatency? FaultLatency { get; init; }
}

/// <summary>POST /v1/migrations/{id}/resolve: "running" (the destination took over) or "failed" (it never will).</summary>
/// <summary>Outcome of an incoming migration, for a source that lost contact after its commit.</summary>
/// <param name="DiscardProof">Base64 sealed proof from the destination runtime that it discarded the state (confidential migrations).</param>
public sealed record ResolveResponse(string Outcome, string? Detail, string? DiscardProof = null);

public sealed record AgentInfo(string Name, string Url, string Version, int Pid, string StateDir, int Workloads, string[] TrackingMethods);

public sealed record ErrorResponse(string Error);

/// <summary>Requests and replies on a runtime's control socket (one JSON object per line).</summary>
public sealed record ControlRequest
{
    /// <summary>"status", "stop", "migrate", "checkpoint" or "discard" (an incoming runtime that has not started the guest).</summary>
    public required string Op { get; init; }
    public MigrateRequest? Migrate { get; init; }
}

public sealed record ControlReply
{
    public required bool Ok { get; init; }
    public string? Error { get; init; }
    public WorkloadStatus? Status { get; init; }
    /// <summary>"checkpoint": the checkpoint written.</summary>
    public CheckpointInfo? Checkpoint { get; init; }
    /// <summary>"discard": the incoming runtime's sealed proof that it discarded the state (base64), if it did.</summary>
    public string? DiscardProof { get; init; }
}

[JsonSerializable(typeof(WorkloadSpec))]
[JsonSerializable(typeof(WorkloadStatus))]
[JsonSerializable(typeof(WorkloadInfo))]
[JsonSerializable(typeof(WorkloadInfo[]))]
[JsonSerializable(typeof(CreateWorkloadRequest))]
[JsonSerializable(typeof(MigrateRequest))]
[JsonSerializable(typeof(MigrationEvent))]
[JsonSerializable(typeof(PrepareMigrationRequest))]
[JsonSerializable(typeof(PrepareMigrationResponse))]
[JsonSerializable(typeof(MigrationInfo))]
[JsonSerializable(typeof(ResolveResponse))]
[JsonSerializable(typeof(AgentInfo))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlReply))]
[JsonSerializable(typeof(MigrationReport))]
[JsonSerializable(typeof(CheckpointInfo))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
public sealed partial class AgentJson : JsonSerializerContext
{
    /// <summary>One-line JSON (control socket, NDJSON event streams).</summary>
    public static string Line<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info) => JsonSerializer.Serialize(value, info);

    /// <summary>Indented JSON (files, --json output).</summary>
    public static string Pretty<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            JsonSerializer.Serialize(writer, value, info);
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}

/// <summary>Names of strategies and tracking methods as operators type them.</summary>
public static class MigrationNames
{
    public static readonly string[] Strategies = ["stopcopy", "precopy", "postcopy", "hybrid"];
    public static readonly string[] TrackingMethods = ["compiler", "kernel"];

    public static bool TryParseStrategy(string? text, out Strategy strategy)
    {
        strategy = Strategy.PreCopy;
        switch (text?.Trim().ToLowerInvariant())
        {
            case "stopcopy" or "stop-and-copy" or "stop-copy": strategy = Strategy.StopCopy; return true;
            case "precopy" or "pre-copy": strategy = Strategy.PreCopy; return true;
            case "postcopy" or "post-copy": strategy = Strategy.PostCopy; return true;
            case "hybrid": strategy = Strategy.Hybrid; return true;
            default: return false;
        }
    }

    public static bool TryParseTracking(string? text, out TrackingMethod tracking)
    {
        tracking = TrackingMethod.Compiler;
        switch (text?.Trim().ToLowerInvariant())
        {
            case "compiler": tracking = TrackingMethod.Compiler; return true;
            case "kernel": tracking = TrackingMethod.Kernel; return true;
            default: return false;
        }
    }

    public static string Name(Strategy s) => s switch
    {
        Strategy.StopCopy => "stopcopy",
        Strategy.PreCopy => "precopy",
        Strategy.PostCopy => "postcopy",
        _ => "hybrid",
    };

    public static string Name(TrackingMethod t) => t == TrackingMethod.Kernel ? "kernel" : "compiler";
}
