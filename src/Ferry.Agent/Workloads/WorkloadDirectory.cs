using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Ferry.Agent.Api;

namespace Ferry.Agent.Workloads;

/// <summary>
/// One workload's directory under the agent's state dir: module.wasm, spec.json, stdout.log, stderr.log,
/// status.json (the runtime's, written atomically), control.sock and, for an incoming migration, data.sock; a
/// checkpointed workload has checkpoint.ferry, a restored one was started from restore.ferry.
/// </summary>
public sealed class WorkloadDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
    public string Id => System.IO.Path.GetFileName(Path);
    public string Module => Combine("module.wasm");
    public string SpecFile => Combine("spec.json");
    public string StatusFile => Combine("status.json");
    public string Stdout => Combine("stdout.log");
    public string Stderr => Combine("stderr.log");
    public string ControlSocket => Combine("control.sock");
    public string DataSocket => Combine("data.sock");
    /// <summary>The checkpoint the runtime writes on `ferry checkpoint` (a plain snapshot, or sealed for a confidential workload).</summary>
    public string Checkpoint => Combine("checkpoint.ferry");
    /// <summary>Restore mode: the uploaded checkpoint the runtime continues from.</summary>
    public string RestoreSource => Combine("restore.ferry");

    /// <summary>
    /// A runtime that was started as a standby under another directory and then adopted for this workload names that
    /// directory here: its command line still shows the directory it was started with.
    /// </summary>
    public const string StartedAsFile = "runtime-dir";

    /// <summary>The directory this workload's runtime was started with (see <see cref="StartedAsFile"/>).</summary>
    public string RuntimeStartedIn()
    {
        try
        {
            return File.ReadAllText(Combine(StartedAsFile)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Path;
        }
    }

    private string Combine(string name) => System.IO.Path.Combine(Path, name);

    public WorkloadSpec ReadSpec() => Read(SpecFile, AgentJson.Default.WorkloadSpec)
        ?? throw new InvalidDataException($"{SpecFile}: missing or unreadable");

    public void WriteSpec(WorkloadSpec spec) => WriteAtomically(SpecFile, spec, AgentJson.Default.WorkloadSpec);

    /// <summary>The runtime's last status, or null before it wrote one.</summary>
    public WorkloadStatus? ReadStatus() => Read(StatusFile, AgentJson.Default.WorkloadStatus);

    public void WriteStatus(WorkloadStatus status) => WriteAtomically(StatusFile, status, AgentJson.Default.WorkloadStatus);

    private static T? Read<T>(string file, JsonTypeInfo<T> info) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(file), info);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Writes to a temporary file and renames it over the target, so readers see the old or the new file whole.</summary>
    public static void WriteAtomically<T>(string file, T value, JsonTypeInfo<T> info)
    {
        var temp = $"{file}.tmp-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}";
        File.WriteAllText(temp, AgentJson.Pretty(value, info));
        File.Move(temp, file, overwrite: true);
    }
}
