using Ferry.Cli;

return CommandCatalog.BuildRoot().Parse(args).Invoke();
