using System.Diagnostics;
using System.Globalization;
using Ferry.Agent.Api;
using Ferry.Agent.Client;
using Ferry.Enclave.Confidential;

namespace Ferry.Cli.Commands;

/// <summary>
/// Two agents on loopback in temporary state dirs, started from this same CLI (for `ferry demo` and
/// `ferry bench migration`). Disposing stops them and every workload runtime they started.
/// </summary>
public sealed class LocalAgents : IDisposable
{
    private readonly List<Process> agents = [];
    private readonly string[] agentOptions;

    /// <param name="prefix">Prefix of the temporary directory holding both agents' state dirs.</param>
    /// <param name="fleetTrust">
    /// Give both hosts a software platform key and one fleet trust file accepting both (STATE/trust.json, the
    /// agents' default), as an operator does with `ferry attest`; so confidential workloads can migrate between them.
    /// </param>
    /// <param name="agentOptions">More `ferry agent` options for both agents (e.g. `--stream-handoff false`).</param>
    public LocalAgents(string prefix, bool fleetTrust = false, params string[] agentOptions)
    {
        this.agentOptions = agentOptions;
        Root = Directory.CreateTempSubdirectory(prefix).FullName;
        if (fleetTrust) WriteFleetTrust(["alpha", "beta"]);
        A = Start("alpha");
        B = Start("beta");
    }

    public string Root { get; }
    public AgentClient A { get; }
    public AgentClient B { get; }

    private void WriteFleetTrust(string[] names)
    {
        var entries = new List<TrustedPlatform>();
        foreach (var name in names)
        {
            using var tee = SoftwareTeeBackend.OpenOrCreate(Path.Combine(Root, name));
            entries.Add(tee.TrustEntry(name));
        }
        var trust = TrustStore.Create(entries);
        foreach (var name in names) trust.Save(Path.Combine(Root, name, "trust.json"));
    }

    private AgentClient Start(string name)
    {
        var command = AgentCommand.FerryCommand();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        string[] arguments = ["agent", "--listen", "127.0.0.1:0", "--name", name, "--state-dir", Path.Combine(Root, name), .. agentOptions];
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start an agent");
        agents.Add(p);
        p.StandardInput.Close();
        _ = p.StandardError.ReadToEndAsync();
        var read = p.StandardOutput.ReadLineAsync();
        if (!read.Wait(TimeSpan.FromSeconds(60)) || read.Result is not { } line || line.IndexOf(" listening on ", StringComparison.Ordinal) is var at && at < 0)
        {
            throw new InvalidOperationException($"agent {name} did not start (see {Path.Combine(Root, name)})");
        }
        _ = p.StandardOutput.ReadToEndAsync();
        return new AgentClient(new Uri(line[(at + 14)..].Split(' ')[0]));
    }

    /// <summary>Follows a workload's stderr until a line starting with <paramref name="prefix"/>; false if it ended first.</summary>
    public static async Task<bool> WaitForLineAsync(AgentClient agent, string id, string prefix, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await using var stream = await agent.LogsAsync(id, "stderr", follow: true, 0, cts.Token);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>The workload's whole stdout once its runtime has ended there.</summary>
    public static async Task<string> WaitForEndAsync(AgentClient agent, string id, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await using var stream = await agent.LogsAsync(id, "stdout", follow: true, 0, cts.Token);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(cts.Token);
    }

    /// <summary>Starts a module on <paramref name="agent"/>.</summary>
    public static Task<WorkloadInfo> RunAsync(AgentClient agent, string modulePath, params string[] args) => RunAsync(agent, modulePath, confidential: false, args);

    /// <summary>Starts a module on <paramref name="agent"/>, as a confidential workload if asked.</summary>
    public static Task<WorkloadInfo> RunAsync(AgentClient agent, string modulePath, bool confidential, params string[] args) =>
        agent.CreateAsync(new CreateWorkloadRequest
        {
            ModuleName = Path.GetFileName(modulePath),
            ModuleBase64 = Convert.ToBase64String(File.ReadAllBytes(modulePath)),
            Args = args,
            Confidential = confidential,
        });

    /// <summary>The repository (for workloads/), found above the running CLI; null if this CLI runs outside it.</summary>
    public static string? RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.sln")) && Directory.Exists(Path.Combine(dir.FullName, "workloads"))) return dir.FullName;
        }
        return null;
    }

    /// <summary>Builds the given suite programs if their wasm32 (and native) outputs are missing; returns the wasm path.</summary>
    public static string EnsureWorkload(string repo, string name)
    {
        var wasm = Path.Combine(repo, "workloads", "out", "wasm32", name + ".wasm");
        var native = Path.Combine(repo, "workloads", "out", "native", name);
        if (File.Exists(wasm) && File.Exists(native)) return wasm;
        Console.Error.WriteLine($"building the workload suite ({name}) with workloads/build …");
        var psi = new ProcessStartInfo(Path.Combine(repo, "workloads", "build")) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(name);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0 || !File.Exists(wasm)) throw new InvalidOperationException($"workloads/build {name} failed (run ./setup first?): {err.Result}");
        return wasm;
    }

    /// <summary>The native build's stdout for exactly <paramref name="ops"/> operations (the uninterrupted reference).</summary>
    public static string? NativeReference(string repo, string name, string[] args, long ops)
    {
        var native = Path.Combine(repo, "workloads", "out", "native", name);
        if (!File.Exists(native)) return null;
        var psi = new ProcessStartInfo(native) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--ops");
        psi.ArgumentList.Add(ops.ToString(CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--progress");
        psi.ArgumentList.Add("0");
        using var p = Process.Start(psi)!;
        _ = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? output : null;
    }

    /// <summary>"ops N checksum X" at the end of a suite program's stdout → N.</summary>
    public static long? OpsOf(string stdout)
    {
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.Split(' ');
        return last is ["ops", var n, "checksum", _] && long.TryParse(n, CultureInfo.InvariantCulture, out var ops) ? ops : null;
    }

    public void Dispose()
    {
        foreach (var p in agents)
        {
            try
            {
                p.Kill();
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }
            p.Dispose();
        }
        A.Dispose();
        B.Dispose();
        // Workload runtimes run in their own sessions: end the ones living under our state dirs.
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid)) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline"));
                if (!cmdline.Contains("\0runtime\0", StringComparison.Ordinal) || !cmdline.Contains(Root, StringComparison.Ordinal)) continue;
                using var runtime = Process.GetProcessById(pid);
                runtime.Kill();
                runtime.WaitForExit(5000);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
            }
        }
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
