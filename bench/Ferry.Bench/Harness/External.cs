using System.Diagnostics;

namespace Ferry.Bench.Harness;

/// <summary>The outcome of an external command.</summary>
public sealed record ExternalResult(int ExitCode, string Stdout, string Stderr)
{
    public ExternalResult EnsureSuccess(string what)
    {
        if (ExitCode != 0) throw new InvalidOperationException($"{what} failed with exit code {ExitCode}: {Stderr.Trim()}");
        return this;
    }
}

/// <summary>Runs build tools and node as subprocesses, capturing their output.</summary>
public static class External
{
    public static ExternalResult Run(string file, IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Repo.Root,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        // Read both streams concurrently so neither pipe fills up and blocks the child.
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return new ExternalResult(p.ExitCode, output, err.GetAwaiter().GetResult());
    }

    public static bool IsOnPath(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            if (dir.Length > 0 && System.IO.File.Exists(Path.Combine(dir, tool))) return true;
        }
        return false;
    }

    /// <summary>node's version string (e.g. v20.20.2), or null when node is not installed.</summary>
    public static string? NodeVersion() => IsOnPath("node") ? Run("node", ["--version"]).Stdout.Trim() : null;
}
