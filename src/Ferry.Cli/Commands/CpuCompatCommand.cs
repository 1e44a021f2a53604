using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuCompatCommand
{
    public static Command Create()
    {
        var command = new Command("compat", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
