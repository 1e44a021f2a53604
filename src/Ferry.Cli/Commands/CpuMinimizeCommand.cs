using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuMinimizeCommand
{
    public static Command Create()
    {
        var command = new Command("minimize", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
