using System.Diagnostics;
using System.Text;

namespace Ferry.Workloads.Tests;

/// <summary>The outcome of one process run.</summary>
public sealed record RunResult(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed)
{
    /// <summary>The final stdout line, "ops N checksum HEX", or "" if there is none.</summary>
    public string FinalLine => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";

    /// <summary>N from the final line; fails the test if the line is malformed.</summary>
    public ulong Ops
    {
        get
        {
            var parts = FinalLine.Split(' ');
            Assert.True(parts.Length == 4 && parts[0] == "ops" && parts[2] == "checksum" && parts[3].Length == 16,
                $"malformed final line '{FinalLine}' (exit {ExitCode}, stderr: {Stderr})");
            return ulong.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    public string Checksum
    {
        get
        {
            _ = Ops; // validates the format
            return FinalLine.Split(' ')[3];
        }
    }

    public override string ToString() => $"exit {ExitCode} after {Elapsed.TotalSeconds:F2}s\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>
/// Builds workloads/ once per test run (xunit collection fixture) and runs processes. The repo root is
/// found by walking up from the test assembly to the folder holding Ferry.sln.
/// </summary>
public sealed class WorkloadBuild
{
    public string RepoRoot { get; }
    public string WorkloadsDir => Path.Combine(RepoRoot, "workloads");
    public string Out => Path.Combine(WorkloadsDir, "out");

    public WorkloadBuild()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ferry.sln")))
            dir = dir.Parent;
        RepoRoot = dir?.FullName ?? throw new InvalidOperationException(
            $"no Ferry.sln above {AppContext.BaseDirectory}: cannot locate the repository");
        var build = Run(Path.Combine(WorkloadsDir, "build"), [], TimeSpan.FromMinutes(5));
        if (build.ExitCode != 0)
            throw new InvalidOperationException($"workloads/build failed:\n{build}");
    }

    public static RunResult Run(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.Append(e.Data).Append('\n'); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds}s");
        }
        p.WaitForExit(); // drains the asynchronous readers
        return new RunResult(p.ExitCode, stdout.ToString(), stderr.ToString(), sw.Elapsed);
    }
}

[CollectionDefinition(Name)]
public sealed class WorkloadCollection : ICollectionFixture<WorkloadBuild>
{
    public const string Name = "workloads";
}
