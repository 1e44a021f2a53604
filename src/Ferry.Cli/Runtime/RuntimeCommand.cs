using System.CommandLine;

namespace Ferry.Cli.Runtime;

/// <summary>
/// `ferry runtime launch|incoming|restore|standby --dir DIR` (hidden): a workload's runtime process, started by the agent.
/// Not for operators; see docs/migration.md for the process contract.
/// </summary>
public static class RuntimeCommand
{
    public static Command Create()
    {
        var command = new Command("runtime", "A workload's runtime process (started by `ferry agent`)") { Hidden = true };
        var standbyDir = new Option<string>("--dir") { Description = "The standby's directory (STATE/standby/TOKEN)", Required = true };
        var standby = new Command("standby", "Wait, warmed up, until the agent hands over an incoming migration") { standbyDir };
        standby.SetAction(parse => StandbyRuntimeProcess.Run(parse.GetValue(standbyDir)!));
        command.Subcommands.Add(standby);
        foreach (var mode in new[] { "launch", "incoming", "restore" })
        {
            var dir = new Option<string>("--dir") { Description = "The workload's directory (spec.json, module.wasm, …)", Required = true };
            var description = mode switch
            {
                "launch" => "Start the workload's module",
                "incoming" => "Receive the workload by migration",
                _ => "Continue the workload from its uploaded checkpoint (restore.ferry)",
            };
            var sub = new Command(mode, description) { dir };
            sub.SetAction(parse =>
            {
                var path = parse.GetValue(dir)!;
                if (!File.Exists(Path.Combine(path, "spec.json")))
                {
                    Console.Error.WriteLine($"ferry runtime: {path} is not a workload directory (no spec.json)");
                    return ExitCodes.Usage;
                }
                return WorkloadRuntime.Run(mode, path);
            });
            command.Subcommands.Add(sub);
        }
        return command;
    }
}
