using System.CommandLine;

namespace Ferry.Cli.Commands;

/// <summary>`ferry demo`: the README's main job — the most complete end-to-end path Ferry has today.</summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var command = new Command("demo", "Run the end-to-end demonstration (what it shows grows with the project)");
        command.SetAction(_ =>
        {
            Console.WriteLine("Ferry demo: the engine is not built yet; nothing to demonstrate.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
