using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuHostCommand
{
    public static Command Create()
    {
        var command = new Command("host", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
