using System.Diagnostics;
using System.Text;

namespace Ferry.Cli.Tests;

/// <summary>Running the real `ferry` CLI (the built ferry.dll) and other programs, with bounded time.</summary>
public static class Cli
{
    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (Ferry.sln)");
    }

    /// <summary>ferry.dll next to the tests (the CLI project is referenced, so its build is copied here).</summary>
    public static string FerryDll => Path.Combine(AppContext.BaseDirectory, "ferry.dll");

    public sealed record Result(int ExitCode, string Out, string Err, TimeSpan Elapsed);

    public static Result Run(string file, IEnumerable<string> args, string? workDir = null, int timeoutSeconds = 300, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workDir ?? RepoRoot,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeoutSeconds} s");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed);
    }

    public static Result Ferry(IEnumerable<string> args, string? workDir = null, int timeoutSeconds = 300) =>
        Run("dotnet", [FerryDll, .. args], workDir, timeoutSeconds);

    /// <summary>Builds the workload suite (incremental) and returns the wasm32 module path of <paramref name="name"/>.</summary>
    public static string Workload(string name, string flavour = "wasm32")
    {
        lock (BuildLock)
        {
            if (!workloadsBuilt)
            {
                var r = Run("bash", [Path.Combine(RepoRoot, "workloads", "build")], timeoutSeconds: 900);
                if (r.ExitCode != 0) throw new InvalidOperationException("workloads/build failed:\n" + r.Err);
                workloadsBuilt = true;
            }
        }
        return Path.Combine(RepoRoot, "workloads", "out", flavour, flavour == "native" ? name : name + ".wasm");
    }

    /// <summary>Builds Lua, SQLite and Flite (programs/build; the first run fetches sources) and returns build/programs.</summary>
    public static string Programs()
    {
        lock (BuildLock)
        {
            if (!programsBuilt)
            {
                var r = Run("bash", [Path.Combine(RepoRoot, "programs", "build")], timeoutSeconds: 1500);
                if (r.ExitCode != 0) throw new InvalidOperationException("programs/build failed:\n" + r.Err);
                programsBuilt = true;
            }
        }
        return Path.Combine(RepoRoot, "build", "programs");
    }

    private static readonly object BuildLock = new();
    private static bool workloadsBuilt;
    private static bool programsBuilt;
}

public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ferry-cli-" + Guid.NewGuid().ToString("N"));

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
