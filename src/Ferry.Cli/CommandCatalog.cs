using System.CommandLine;
using System.Reflection;
using Ferry.Cli.Commands;

namespace Ferry.Cli;

/// <summary>The one place where the `ferry` command tree is assembled. Each command lives in its own file.</summary>
public static class CommandCatalog
{
    public static string Version =>
        typeof(CommandCatalog).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "0.0.0";

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "Ferry live-migrates running WebAssembly workloads between hosts, including confidential ones and across CPU generations and ISAs.");
        Command[] commands =
        [
            DemoCommand.Create(),
            RunCommand.Create(),
            RestoreCommand.Create(),
            CheckpointCommand.Create(),
            SnapshotCommand.Create(),
            SpecTestCommand.Create(),
            CpuCommand.Create(),
            AgentCommand.Create(),
            AttestCommand.Create(),
            RemoteCommands.Ps(),
            RemoteCommands.Logs(),
            RemoteCommands.Stop(),
            MigrateCommand.Create(),
            BenchCommand.Create(),
            Runtime.RuntimeCommand.Create(),
        ];
        foreach (var command in commands)
        {
            root.Subcommands.Add(command);
        }
        return root;
    }
}
