using System.CommandLine;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Commands;

/// <summary>`ferry restore FILE`: continue a checkpointed program in this process.</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("snapshot") { Description = "A snapshot written by `ferry run --snapshot`" };
        var module = new Option<string?>("--module") { Description = "The module, if the snapshot does not carry it" };
        var dirs = new Option<string[]>("--dir") { Description = "Preopened directories, as given to `ferry run` (HOST or HOST::GUEST); checked against the snapshot" };
        var snapshot = new Option<string?>("--snapshot") { Description = "Checkpoint again to this file (after --checkpoint-after or on SIGUSR1)" };
        var after = new Option<string?>("--checkpoint-after") { Description = "Checkpoint again after this long" };
        var command = new Command("restore", "Continue a checkpointed program where it stopped (stdout continues, exit code is the program's)")
        {
            file, module, dirs, snapshot, after,
        };
        command.SetAction(parse =>
        {
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
            var path = parse.GetValue(file)!;
            if (!File.Exists(path))
            {
                Console.Error.WriteLine($"ferry restore: no such snapshot: {path}");
                return ExitCodes.Usage;
            }
            return Hosting.LocalGuest.Restore(path, parse.GetValue(module), preopens, parse.GetValue(snapshot), delay);
        });
        return command;
    }
}
