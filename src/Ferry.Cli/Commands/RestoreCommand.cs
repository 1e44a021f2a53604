using System.CommandLine;
using Ferry.Agent.Api;
using Ferry.Enclave.Confidential;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry restore FILE`: continue a checkpointed program in this process; `ferry restore --on URL FILE`: upload the
/// checkpoint to an agent, which continues it as a workload (the only way to restore a sealed checkpoint).
/// </summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("snapshot") { Description = "A snapshot written by `ferry run --snapshot`, or a checkpoint written by `ferry checkpoint`" };
        var module = new Option<string?>("--module") { Description = "The module, if the snapshot does not carry it" };
        var dirs = new Option<string[]>("--dir") { Description = "Preopened directories, as given to `ferry run` (HOST or HOST::GUEST); checked against the snapshot" };
        var snapshot = new Option<string?>("--snapshot") { Description = "Checkpoint again to this file (after --checkpoint-after or on SIGUSR1)" };
        var after = new Option<string?>("--checkpoint-after") { Description = "Checkpoint again after this long" };
        var on = new Option<string?>("--on")
        {
            Description = "Restore it on this agent (http://HOST:PORT) as a workload; prints its id. Sealed checkpoints restore only on the agent whose host wrote them",
        };
        var name = new Option<string?>("--name") { Description = "With --on: the workload's name (default: the checkpointed workload's)" };
        var json = new Option<bool>("--json") { Description = "With --on: print the restored workload as JSON" };
        var command = new Command("restore", "Continue a checkpointed program where it stopped, here or on an agent (--on)")
        {
            file, module, dirs, snapshot, after, on, name, json,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            if (parse.GetValue(on) is { } agent)
            {
                if (parse.GetValue(module) is not null || (parse.GetValue(dirs) ?? []).Length > 0 || parse.GetValue(snapshot) is not null || parse.GetValue(after) is not null)
                {
                    Console.Error.WriteLine("ferry restore: --module, --dir, --snapshot and --checkpoint-after do not apply with --on (checkpoint a workload there with `ferry checkpoint ID --on URL`)");
                    return ExitCodes.Usage;
                }
                return OnAgent(agent, path, parse.GetValue(name), parse.GetValue(json));
            }
            if (parse.GetValue(name) is not null || parse.GetValue(json))
            {
                Console.Error.WriteLine("ferry restore: --name and --json go with --on");
                return ExitCodes.Usage;
            }
            var preopens = new List<WasiPreopen>();
            foreach (var d in parse.GetValue(dirs) ?? [])
            {
                if (!RunCommand.TryParseDir(d, out var p, out var why))
                {
                    Console.Error.WriteLine($"ferry restore: --dir {d}: {why}");
                    return ExitCodes.Usage;
                }
                preopens.Add(p);
            }
            TimeSpan? delay = null;
            if (parse.GetValue(after) is { } text)
            {
                if (!DurationParser.TryParse(text, out var d))
                {
                    Console.Error.WriteLine($"ferry restore: --checkpoint-after: not a duration: '{text}'");
                    return ExitCodes.Usage;
                }
                delay = d;
            }
            if (!File.Exists(path))
            {
                Console.Error.WriteLine($"ferry restore: no such snapshot: {path}");
                return ExitCodes.Usage;
            }
            if (SealedHeader(path) is { } sealedHeader)
            {
                // Only the trusted runtime of the host that sealed it can open it, and only once (its epoch store decides).
                Console.Error.WriteLine($"ferry restore: {path} is a sealed checkpoint of a confidential workload (measurement {Measurement.Short(sealedHeader.Identity.Measurement)}…, epoch {sealedHeader.Epoch}); "
                    + "it cannot be opened here: restore it on the agent that wrote it with `ferry restore --on URL FILE`");
                return ExitCodes.Failure;
            }
            return Hosting.LocalGuest.Restore(path, parse.GetValue(module), preopens, parse.GetValue(snapshot), delay);
        });
        return command;
    }

    /// <summary>The header of a sealed checkpoint, or null if <paramref name="path"/> is not one (or cannot be read).</summary>
    internal static CheckpointHeader? SealedHeader(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var start = new byte[SealedCheckpoint.MagicLength];
            var n = stream.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
            if (!SealedCheckpoint.IsSealed(start.AsSpan(0, n))) return null;
            stream.Position = 0;
            return SealedCheckpoint.ReadHeader(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SealedDataException)
        {
            return null;
        }
    }

    private static int OnAgent(string url, string path, string? name, bool asJson)
    {
        FileStream checkpoint;
        try
        {
            checkpoint = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry restore: {path}: {e.Message}");
            return e is FileNotFoundException or DirectoryNotFoundException ? ExitCodes.Usage : ExitCodes.Failure;
        }
        using (checkpoint)
        {
            return RemoteCommands.WithAgentAsync("restore", url, async client =>
            {
                var w = await client.RestoreAsync(checkpoint, name);
                if (asJson)
                {
                    Console.WriteLine(AgentJson.Pretty(w, AgentJson.Default.WorkloadInfo));
                    return ExitCodes.Ok;
                }
                Console.Error.WriteLine($"ferry restore: restored {w.Name} as {w.Id} on {w.Host} ({w.State})"
                    + (w.RestoredFrom is { } from ? $" from the {from}" : "")
                    + (w.Measurement is { } m ? $", confidential, measurement {m}" : ""));
                Console.WriteLine(w.Id);
                return ExitCodes.Ok;
            }).GetAwaiter().GetResult();
        }
    }
}
