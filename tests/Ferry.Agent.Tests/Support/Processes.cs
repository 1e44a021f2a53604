using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Ferry.Agent.Tests.Support;

/// <summary>The outcome of one process run.</summary>
public sealed record RunResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>Repository paths, the built CLI, the workload suite and its native reference runs.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (Ferry.sln) above " + AppContext.BaseDirectory);
    }

    /// <summary>The ferry CLI of the same configuration as this test assembly.</summary>
    public static string FerryDll
    {
        get
        {
            var config = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
            var dll = Path.Combine(Root, "src", "Ferry.Cli", "bin", config, "net10.0", "ferry.dll");
            if (!File.Exists(dll)) throw new FileNotFoundException("the ferry CLI is not built: " + dll);
            return dll;
        }
    }

    public static readonly string[] Suite = ["btree", "hashjoin", "bfs", "pagerank", "kvstore", "xsbench", "svm", "blockchain", "microbench"];

    private static readonly Lazy<bool> Built = new(() =>
    {
        var r = Run(Path.Combine(Root, "workloads", "build"), [], TimeSpan.FromMinutes(5));
        if (r.ExitCode != 0) throw new InvalidOperationException("workloads/build failed:\n" + r);
        return true;
    });

    /// <summary>workloads/out/wasm32/NAME.wasm (the suite is built once per test run).</summary>
    public static string Wasm(string name)
    {
        _ = Built.Value;
        return Path.Combine(Root, "workloads", "out", "wasm32", name + ".wasm");
    }

    /// <summary>The uninterrupted native run of <paramref name="name"/> with exactly <paramref name="ops"/> operations: its stdout.</summary>
    public static string NativeReference(string name, string mem, long ops)
    {
        _ = Built.Value;
        var r = Run(Path.Combine(Root, "workloads", "out", "native", name),
            ["--mem", mem, "--ops", ops.ToString(CultureInfo.InvariantCulture), "--progress", "0"], TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, $"native reference run failed: {r}");
        return r.Stdout;
    }

    /// <summary>Runs a process to completion, bounded, capturing both outputs.</summary>
    public static RunResult Run(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = Root,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null)
        {
            foreach (var (k, v) in env) psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:0} s");
        }
        p.WaitForExit();
        return new RunResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>`ferry ARGS` (the built CLI), bounded.</summary>
    public static RunResult Ferry(params string[] args) => Run("dotnet", [FerryDll, .. args], TimeSpan.FromMinutes(3));

    /// <summary>"ops N checksum HEX" → N; fails the test if <paramref name="stdout"/> does not end with such a line.</summary>
    public static long OpsOf(string stdout)
    {
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        var parts = last.Split(' ');
        Assert.True(parts is ["ops", _, "checksum", { Length: 16 }], $"no final 'ops N checksum X' line in:\n{stdout}");
        return long.Parse(parts[1], CultureInfo.InvariantCulture);
    }
}

/// <summary>A `ferry agent` process on loopback with its own state dir; can be killed and restarted on the same port.</summary>
public sealed class AgentProcess : IDisposable
{
    private readonly Dictionary<string, string> env;
    private readonly string[] extraArgs;
    private Process? process;
    private readonly StringBuilder log = new();

    public AgentProcess(string name, string stateDir, Dictionary<string, string>? env = null, string[]? extraArgs = null)
    {
        Name = name;
        StateDir = stateDir;
        this.env = env ?? [];
        this.extraArgs = extraArgs ?? [];
        Start(0);
    }

    public string Name { get; }
    public string StateDir { get; }
    public string Url { get; private set; } = "";
    public int Pid => process?.Id ?? 0;
    public string Log
    {
        get
        {
            lock (log) return log.ToString();
        }
    }

    private void Start(int port)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, WorkingDirectory = Repo.Root };
        foreach (var a in new[] { Repo.FerryDll, "agent", "--listen", $"127.0.0.1:{port}", "--name", Name, "--state-dir", StateDir }.Concat(extraArgs)) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            var at = e.Data.IndexOf(" listening on ", StringComparison.Ordinal);
            if (at >= 0) listening.TrySetResult(e.Data[(at + 14)..].Split(' ')[0]);
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
        };
        p.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"agent {Name} exited during start-up:\n{Log}"));
        p.EnableRaisingEvents = true;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        process = p;
        if (!listening.Task.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException($"agent {Name} did not start listening within 60 s:\n{Log}");
        Url = listening.Task.Result;
    }

    /// <summary>SIGKILL, as a crash would; its workloads (own sessions) keep running.</summary>
    public void Kill()
    {
        if (process is null) return;
        try
        {
            process.Kill();
        }
        catch (InvalidOperationException)
        {
        }
        process.WaitForExit(10_000);
        process.Dispose();
        process = null;
    }

    /// <summary>Kill and start again on the same port with the same state dir.</summary>
    public void Restart()
    {
        Kill();
        StartAgain();
    }

    /// <summary>After <see cref="Kill"/>: start again on the same port with the same state dir.</summary>
    public void StartAgain() => Start(new Uri(Url).Port);

    public void Dispose() => Kill();
}
