using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Client;

namespace Ferry.Agent.Tests.Support;

/// <summary>What a runtime reported to the test hook.</summary>
public sealed record HookEvent(string Side, string Phase, string Workload, string? Migration, int Pid);

/// <summary>
/// The test end of FERRY_TEST_HOOK: runtimes report each migration phase here and wait for the answer, so a
/// test acts (kills, cuts, restarts) at exactly that point. Handlers are registered per workload id; other
/// workloads get "continue" at once.
/// </summary>
public sealed class HookServer : IDisposable
{
    private readonly Socket listener;
    private readonly ConcurrentDictionary<string, Func<HookEvent, Task<string>>> handlers = new();

    public HookServer(string path)
    {
        Path = path;
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(64);
        _ = Task.Run(AcceptAsync);
    }

    public string Path { get; }
    public ConcurrentQueue<HookEvent> Events { get; } = new();

    public void On(string workload, Func<HookEvent, Task<string>> handler) => handlers[workload] = handler;

    private Task? nextStartGate;

    /// <summary>The next workload to start waits (compiled, reported running) until <paramref name="gate"/> completes.</summary>
    public void HoldNextStart(Task gate) => nextStartGate = gate;

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket s;
            try
            {
                s = await listener.AcceptAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(s));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            await using var stream = new NetworkStream(socket);
            using var reader = new StreamReader(stream);
            var line = await reader.ReadLineAsync();
            if (line is null) return;
            var d = JsonSerializer.Deserialize<Dictionary<string, string?>>(line)!;
            var ev = new HookEvent(d["side"]!, d["phase"]!, d["workload"]!, d.GetValueOrDefault("migration"),
                int.Parse(d["pid"]!, CultureInfo.InvariantCulture));
            Events.Enqueue(ev);
            var action = "continue";
            if (ev.Side == "launch")
            {
                if (Interlocked.Exchange(ref nextStartGate, null) is { } gate) await gate.WaitAsync(TimeSpan.FromSeconds(100));
            }
            else if (handlers.TryGetValue(ev.Workload, out var handler))
            {
                action = await handler(ev);
            }
            try
            {
                await stream.WriteAsync(Encoding.UTF8.GetBytes(action + "\n"));
            }
            catch (IOException)
            {
                // The runtime died meanwhile (e.g. the test killed it).
            }
        }
    }

    public void Dispose() => listener.Dispose();
}

/// <summary>
/// Two agents ("alpha" and "beta") on loopback with temporary state dirs and the test hook.
/// Disposing kills the agents and every runtime process living in those state dirs.
/// </summary>
public sealed class AgentPair : IDisposable
{
    public AgentPair()
        : this(trustBeta: null)
    {
    }

    private AgentPair(bool? trustBeta, params string[] agentOptions)
    {
        // Short paths: Unix socket paths are limited to 108 bytes.
        Root = Directory.CreateTempSubdirectory("fat-").FullName;
        Hook = new HookServer(System.IO.Path.Combine(Root, "hook.sock"));
        var env = new Dictionary<string, string> { ["FERRY_TEST_HOOK"] = Hook.Path };
        var a = System.IO.Path.Combine(Root, "a");
        var b = System.IO.Path.Combine(Root, "b");
        string[] extra = [];
        if (trustBeta is { } withBeta)
        {
            // The fleet trust file, built the way an operator does: each host's `ferry attest` entry.
            TrustFile = System.IO.Path.Combine(Root, "trust.json");
            var entries = new List<string> { AttestEntry(a, "alpha") };
            var betaEntry = AttestEntry(b, "beta");
            if (withBeta) entries.Add(betaEntry);
            File.WriteAllText(TrustFile, $"{{\"format\": \"ferry-trust/1\", \"platforms\": [{string.Join(",", entries)}]}}");
            extra = ["--trust", TrustFile];
        }
        extra = [.. extra, .. agentOptions];
        A = new AgentProcess("alpha", a, env, extra);
        B = new AgentProcess("beta", b, env, extra);
    }

    /// <summary>Two agents that relay every migration stream's bytes (<c>--stream-handoff false</c>) instead of handing the connection over.</summary>
    public static AgentPair Relaying() => new(null, "--stream-handoff", "false");

    /// <summary>The runtime log (stderr.log) of workload <paramref name="id"/> on <paramref name="agent"/>.</summary>
    public string RuntimeLog(AgentProcess agent, string id) =>
        File.ReadAllText(System.IO.Path.Combine(Root, agent == A ? "a" : "b", "workloads", id, "stderr.log"));

    /// <summary>
    /// Two agents sharing one fleet trust file (--trust) that lists alpha's platform key and, if
    /// <paramref name="trustBeta"/>, beta's: for confidential workloads.
    /// </summary>
    public static AgentPair WithTrustFile(bool trustBeta = true) => new(trustBeta);

    /// <summary>`ferry attest --state-dir DIR --name NAME --json` → the trust-file entry (creates the platform key).</summary>
    public static string AttestEntry(string stateDir, string name)
    {
        var r = Repo.Ferry("attest", "--state-dir", stateDir, "--name", name, "--json");
        Assert.True(r.ExitCode == 0, $"ferry attest failed: {r}");
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("entry").GetRawText();
    }

    /// <summary>The shared trust file (<see cref="WithTrustFile"/> pairs only).</summary>
    public string? TrustFile { get; }

    public string Root { get; }
    public AgentProcess A { get; }
    public AgentProcess B { get; }
    public HookServer Hook { get; }

    public AgentClient Client(AgentProcess agent) => new(new Uri(agent.Url));

    /// <summary>
    /// Migrates <paramref name="workload"/> from A to B mid-run, deterministically: the program is held before it
    /// starts (test hook) while the migration prepares (the destination runtime starts and compiles the module:
    /// seconds on a loaded machine); when the destination has accepted and compiled, the program starts, and the migration
    /// goes on — nothing frozen or sent yet — once the program has printed its first progress line. So the
    /// migration happens while it runs, however slow the machine. <paramref name="extra"/> may act at later
    /// phases. Returns the workload id and the finished `ferry migrate` run.
    /// </summary>
    /// <param name="runOptions">Options for `ferry run` (e.g. --confidential).</param>
    /// <param name="to">The URL the migration goes to (default B's; e.g. a proxy in front of it).</param>
    /// <param name="module">A module file to run instead of the suite's <paramref name="workload"/>.</param>
    public async Task<(string Id, RunResult Migrate)> MigrateMidRunAsync(string workload, string[] args, string[] migrateArgs,
        Func<HookEvent, Task<string>>? extra = null, string[]? runOptions = null, string? to = null, string? module = null)
    {
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var compiled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Hook.HoldNextStart(start.Task);
        var id = RunModule(A, module ?? Repo.Wasm(workload), runOptions ?? [], args);
        var progressed = WaitForLineAsync(A, id, "progress ");
        Hook.On(id, async ev =>
        {
            if (ev.Side == "source" && ev.Phase == "accepted")
            {
                // The destination compiles the module in the background (for pre-copy and hybrid, after accepting):
                // the program's few seconds must not include that either. Bounded: a destination that a test has
                // just killed never reports it.
                await Task.WhenAny(compiled.Task, Task.Delay(TimeSpan.FromSeconds(120)));
                start.TrySetResult();
                await progressed;
                return "continue";
            }
            if (ev.Side == "destination" && ev.Phase == "compiled") compiled.TrySetResult();
            return extra is null ? "continue" : await extra(ev);
        });
        var migrate = await Task.Run(() => Repo.Ferry(["migrate", id, "--from", A.Url, "--to", to ?? B.Url, "--json", .. migrateArgs]));
        start.TrySetResult(); // if the migration failed before "accepted", the program starts now
        await progressed;
        return (id, migrate);
    }

    /// <summary>`ferry run --on A module ARGS…` → the workload id.</summary>
    public string Run(AgentProcess on, string workload, params string[] args) => RunModule(on, Repo.Wasm(workload), [], args);

    /// <summary>`ferry run --on A OPTIONS… module.wasm ARGS…` → the workload id.</summary>
    public string RunModule(AgentProcess on, string module, string[] runOptions, string[] args)
    {
        var r = Repo.Ferry(["run", "--on", on.Url, .. runOptions, module, .. args]);
        Assert.True(r.ExitCode == 0, $"ferry run --on failed: {r}\nagent log:\n{on.Log}");
        var id = r.Stdout.Trim();
        Assert.Matches("^[0-9a-f]{8}$", id);
        return id;
    }

    /// <summary>
    /// Follows a workload's stderr until a line starting with <paramref name="prefix"/> appears (bounded). An agent
    /// restart in between (failure tests) breaks the stream: it is opened again.
    /// </summary>
    public async Task WaitForLineAsync(AgentProcess on, string id, string prefix, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            try
            {
                using var client = Client(on);
                await using var stream = await client.LogsAsync(id, "stderr", follow: true, 0, cts.Token);
                using var reader = new StreamReader(stream);
                while (await reader.ReadLineAsync(cts.Token) is { } line)
                {
                    if (line.StartsWith(prefix, StringComparison.Ordinal)) return;
                }
                Assert.Fail($"workload {id} on {on.Name} ended its stderr without a line starting with '{prefix}'");
            }
            catch (Exception e) when (e is IOException or HttpRequestException or AgentUnreachableException && !cts.IsCancellationRequested)
            {
                await Task.Delay(50, cts.Token);
            }
        }
    }

    /// <summary>Follows a workload's stdout until its runtime has ended (the follow stream ends with it); returns all of it.</summary>
    public async Task<string> WaitForEndAsync(AgentProcess on, string id, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        while (true)
        {
            try
            {
                using var client = Client(on);
                await using var stream = await client.LogsAsync(id, "stdout", follow: true, 0, cts.Token);
                using var reader = new StreamReader(stream);
                return await reader.ReadToEndAsync(cts.Token);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or AgentUnreachableException && !cts.IsCancellationRequested)
            {
                await Task.Delay(50, cts.Token);
            }
        }
    }

    public async Task<WorkloadInfo?> TryGetAsync(AgentProcess on, string id)
    {
        using var client = Client(on);
        try
        {
            return await client.GetAsync(id);
        }
        catch (AgentErrorException e) when (e.Status == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>Runtime processes (pid, dir) of a workload id under both state dirs that are alive and whose status says the guest runs.</summary>
    public List<(int Pid, string Dir, string State)> RunningCopies(string id)
    {
        var result = new List<(int, string, string)>();
        foreach (var (pid, dir) in RuntimeProcesses())
        {
            if (!dir.Contains(id, StringComparison.Ordinal)) continue;
            var status = new Agent.Workloads.WorkloadDirectory(dir).ReadStatus();
            if (status is { State: WorkloadStates.Running or WorkloadStates.Migrating }) result.Add((pid, dir, status.State));
        }
        return result;
    }

    /// <summary>Live runtime processes started under this pair's state dirs (standby runtimes included): (pid, workload dir).</summary>
    public IEnumerable<(int Pid, string Dir)> RuntimeProcesses()
    {
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(proc), out var pid)) continue;
            string[] args;
            try
            {
                args = File.ReadAllText(System.IO.Path.Combine(proc, "cmdline")).Split('\0');
            }
            catch (IOException)
            {
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }
            var i = Array.IndexOf(args, "--dir");
            if (Array.IndexOf(args, "runtime") < 0 || i < 0 || i + 1 >= args.Length) continue;
            if (!args[i + 1].StartsWith(Root, StringComparison.Ordinal)) continue;
            // A runtime that started as the agent's standby names STATE/standby/TOKEN, since adopted a link to its workload's directory.
            yield return (pid, new DirectoryInfo(args[i + 1]).LinkTarget ?? args[i + 1]);
        }
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        foreach (var (pid, _) in RuntimeProcesses().ToList())
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit(5000);
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }
        Hook.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
