using System.CommandLine;
using System.Text.Json.Serialization;
using Ferry.Agent.Api;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry checkpoint ID --on URL [--output FILE] [--json]`: the workload's runtime freezes the guest at a safe point and
/// writes a checkpoint on the agent's host (sealed to that host for a confidential workload); the workload does not run
/// on afterwards. With --output the file is downloaded. `ferry restore --on URL FILE` continues it.
/// </summary>
public static class CheckpointCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("id") { Description = "The workload's id" };
        var on = RemoteCommands.OnOption();
        var output = new Option<string?>("--output", "-o") { Description = "Download the checkpoint to this file (otherwise it stays on the agent's host)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("checkpoint",
            "Freeze a workload on an agent and write it to a checkpoint (sealed to that host if confidential); it does not run on")
        {
            id, on, output, json,
        };
        command.SetAction((parse, ct) => RemoteCommands.WithAgentAsync("checkpoint", parse.GetValue(on)!, async client =>
        {
            var w = await client.CheckpointAsync(parse.GetValue(id)!, ct);
            var c = w.Checkpoint ?? throw new IOException($"agent {client.Display} reported no checkpoint for {w.Id} (state {w.State})");
            string? saved = null;
            if (parse.GetValue(output) is { } target)
            {
                saved = Path.GetFullPath(target);
                var temp = $"{saved}.part-{Environment.ProcessId}";
                try
                {
                    await using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
                    {
                        await client.DownloadCheckpointAsync(w.Id, file, ct);
                        await file.FlushAsync(ct);
                    }
                    File.Move(temp, saved, overwrite: true);
                }
                catch
                {
                    File.Delete(temp);
                    throw;
                }
            }
            if (parse.GetValue(json))
            {
                var result = new CheckpointOutput
                {
                    Workload = w.Id,
                    Host = w.Host,
                    State = w.State,
                    Path = c.Path,
                    Bytes = c.Bytes,
                    Sealed = c.Sealed,
                    Epoch = c.Epoch,
                    Measurement = c.Measurement,
                    MemoryBytes = c.MemoryBytes,
                    Output = saved,
                };
                Console.WriteLine(AgentJson.Pretty(result, CheckpointJson.Default.CheckpointOutput));
                return ExitCodes.Ok;
            }
            Console.Error.WriteLine($"ferry checkpoint: {w.Id} on {w.Host} is {w.State}: {RemoteCommands.FormatBytes((ulong)c.Bytes)} at {c.Path} on the agent's host"
                + (c.Sealed ? $", sealed to that host at epoch {c.Epoch} (measurement {c.Measurement?[..Math.Min(12, c.Measurement.Length)]}); restore it there with `ferry restore --on URL FILE`" : ""));
            Console.WriteLine(saved ?? c.Path);
            return ExitCodes.Ok;
        }));
        return command;
    }
}

/// <summary>`ferry checkpoint --json`.</summary>
public sealed record CheckpointOutput
{
    public required string Workload { get; init; }
    public required string Host { get; init; }
    public required string State { get; init; }
    /// <summary>The checkpoint on the agent's host.</summary>
    public required string Path { get; init; }
    public long Bytes { get; init; }
    public bool Sealed { get; init; }
    public ulong? Epoch { get; init; }
    public string? Measurement { get; init; }
    public ulong MemoryBytes { get; init; }
    /// <summary>Where --output saved it (null without --output).</summary>
    public string? Output { get; init; }
}

[JsonSerializable(typeof(CheckpointOutput))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class CheckpointJson : JsonSerializerContext;
