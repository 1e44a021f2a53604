using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuModelCommand
{
    public static Command Create()
    {
        var command = new Command("model", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
