using Ferry.Cli;

var parse = CommandCatalog.BuildRoot().Parse(GuestArgs.Separate(args));
if (parse.Errors.Count > 0)
{
    // Bad flags or arguments: say what is wrong and exit with the usage code, having done nothing.
    foreach (var error in parse.Errors) Console.Error.WriteLine($"ferry: {error.Message}");
    Console.Error.WriteLine("ferry: see 'ferry --help' or 'ferry COMMAND --help'");
    return ExitCodes.Usage;
}
return parse.Invoke();
