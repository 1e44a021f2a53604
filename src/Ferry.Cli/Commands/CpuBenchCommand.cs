using System.CommandLine;

namespace Ferry.Cli.Commands;

public static class CpuBenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "TODO");
        command.SetAction(_ => ExitCodes.Failure);
        return command;
    }
}
