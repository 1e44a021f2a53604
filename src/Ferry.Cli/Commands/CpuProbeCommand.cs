using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuProbeCommand
{
    public static Command Create()
    {
        var command = new Command("probe", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
