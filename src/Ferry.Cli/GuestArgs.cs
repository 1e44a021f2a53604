namespace Ferry.Cli;

/// <summary>
/// Everything after the module path of `ferry run` belongs to the guest program, even tokens that look like
/// options (`flite.wasm -t text -o out.wav`). This inserts "--" after the module path so the parser leaves them alone.
/// </summary>
public static class GuestArgs
{
    /// <summary>Options of the commands below that take a value (so their values are not mistaken for the module path).</summary>
    private static readonly HashSet<string> OptionsWithValue = new(StringComparer.Ordinal)
    {
        "--invoke", "--mem-max", "--dir", "--env", "--snapshot", "--checkpoint-after", "--on", "--tracking", "--strategy", "--name",
    };

    private static readonly HashSet<string> Commands = new(StringComparer.Ordinal) { "run" };

    public static string[] Separate(string[] args)
    {
        if (args.Length == 0 || !Commands.Contains(args[0]) || Array.IndexOf(args, "--") >= 0) return args;
        for (var i = 1; i < args.Length; i++)
        {
            var a = args[i];
            if (a.StartsWith('-'))
            {
                if (OptionsWithValue.Contains(a)) i++;
                continue;
            }
            // args[i] is the module path; the rest is the guest's.
            if (i == args.Length - 1) return args;
            return [.. args[..(i + 1)], "--", .. args[(i + 1)..]];
        }
        return args;
    }
}
