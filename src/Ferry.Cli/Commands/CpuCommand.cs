using System.CommandLine;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu`: CPU-feature discovery and migration compatibility for native x86-64 programs.</summary>
public static class CpuCommand
{
    public static Command Create()
    {
        var command = new Command("cpu", "CPU features native x86-64 programs need, the hosts that can run them, and the CPU model to present");
        command.Subcommands.Add(CpuScanCommand.Create());
        command.Subcommands.Add(CpuHostCommand.Create());
        command.Subcommands.Add(CpuModelCommand.Create());
        command.Subcommands.Add(CpuCompatCommand.Create());
        command.Subcommands.Add(CpuProbeCommand.Create());
        command.Subcommands.Add(CpuMinimizeCommand.Create());
        command.Subcommands.Add(CpuBenchCommand.Create());
        return command;
    }
}
