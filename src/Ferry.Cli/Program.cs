using Ferry.Cli;

return CommandCatalog.BuildRoot().Parse(GuestArgs.Separate(args)).Invoke();
