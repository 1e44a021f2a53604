namespace Ferry.Cli;

/// <summary>Process exit codes shared by every command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The command ran and reported a failure (a failed test, a refused input).</summary>
    public const int Failure = 1;
    /// <summary>Bad flags or arguments; nothing was done.</summary>
    public const int Usage = 2;
}
