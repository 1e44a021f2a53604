using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;

namespace Ferry.Agent.Tests;

/// <summary>The operator commands and the HTTP API against real agents: listing, logs, stopping, errors, crashes, restarts.</summary>
public sealed class AgentApiTests(AgentPair pair) : IClassFixture<AgentPair>
{
    /// <summary>(module (func (export "_start") unreachable)): traps at once.</summary>
    private static readonly byte[] TrappingModule =
    [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
        0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x00, 0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
    ];

    private string Long() => pair.Run(pair.A, "microbench", "--mem", "8M", "--seconds", "120", "--progress", "0.2");

    [Fact]
    public async Task Agent_info_lists_the_tracking_methods_this_host_can_use()
    {
        using var client = pair.Client(pair.A);
        var info = await client.InfoAsync();
        // Same host, same permissions as the agent process: the probe answers the same here.
        string[] expected = Ferry.Enclave.Tracking.UserfaultfdSupport.Current.DirtyTrackingUnavailableReason is null ? ["compiler", "kernel"] : ["compiler"];
        Assert.Equal(expected, info.TrackingMethods);
    }

    [Fact]
    public async Task Ps_logs_and_stop_show_and_end_a_workload()
    {
        var id = Long();
        await pair.WaitForLineAsync(pair.A, id, "progress ");
        var ps = Repo.Ferry("ps", "--on", pair.A.Url);
        Assert.Equal(0, ps.ExitCode);
        Assert.Equal(["ID", "NAME", "STATE", "HOST", "MEMORY", "UPTIME", "CONFIDENTIAL", "NOTE"], ps.Stdout.Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var row = ps.Stdout.Split('\n').Single(l => l.StartsWith(id, StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([id, "microbench", "running", "alpha"], row[..4]);

        // The runtime refreshes the memory size in its status every 250 ms, so the first listing after the program's
        // first progress line may still show the size before its initialisation grew the memory: list again
        // (bounded) until it shows the grown size.
        WorkloadInfo w;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var json = Repo.Ferry("ps", "--on", pair.A.Url, "--json");
            w = JsonSerializer.Deserialize(json.Stdout, AgentJson.Default.WorkloadInfoArray)!.Single(x => x.Id == id);
            if (w.MemoryBytes >= 8 << 20 || DateTime.UtcNow > deadline) break;
        }
        Assert.True(w.MemoryBytes >= 8 << 20, $"memory {w.MemoryBytes}");
        Assert.True(w.Pid > 0);
        Assert.Equal(["--mem", "8M", "--seconds", "120", "--progress", "0.2"], w.Args);

        var logs = Repo.Ferry("logs", id, "--on", pair.A.Url, "--stream", "stderr");
        Assert.Equal(0, logs.ExitCode);
        Assert.Contains("microbench: init done", logs.Stderr, StringComparison.Ordinal);

        var stop = Repo.Ferry("stop", id, "--on", pair.A.Url);
        Assert.True(stop.ExitCode == 0, stop.ToString());
        Assert.Equal($"{id} stopped", stop.Stdout.Trim());
        Assert.DoesNotContain(pair.RuntimeProcesses(), p => p.Pid == w.Pid);
        Assert.Equal(WorkloadStates.Stopped, (await pair.TryGetAsync(pair.A, id))!.State);
    }

    [Fact]
    public async Task A_finished_workload_reports_its_exit_and_its_output_follows_to_the_end()
    {
        var id = pair.Run(pair.A, "kvstore", "--mem", "8M", "--ops", "200000", "--progress", "0");
        var follow = await Task.Run(() => Repo.Ferry("logs", id, "--on", pair.A.Url, "--follow", "--stream", "stdout"));
        Assert.Equal(0, follow.ExitCode);
        Assert.Equal(Repo.NativeReference("kvstore", "8M", 200000), follow.Stdout);
        var w = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.Exited, w!.State);
        Assert.Equal(0, w.ExitCode);
    }

    [Fact]
    public async Task A_crashing_workload_does_not_take_the_agent_down()
    {
        var file = Path.Combine(pair.Root, "trap.wasm");
        await File.WriteAllBytesAsync(file, TrappingModule);
        var run = Repo.Ferry("run", "--on", pair.A.Url, file);
        Assert.Equal(0, run.ExitCode);
        var id = run.Stdout.Trim();
        await pair.WaitForEndAsync(pair.A, id);
        var w = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.Trapped, w!.State);
        Assert.Equal(134, w.ExitCode);
        Assert.Contains("unreachable", w.Message, StringComparison.Ordinal);

        // A runtime killed outright is reported as lost; the agent carries on.
        var victim = Long();
        var pid = (await pair.TryGetAsync(pair.A, victim))!.Pid;
        using (var p = Process.GetProcessById(pid))
        {
            p.Kill();
            await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        Assert.Equal(WorkloadStates.Lost, (await pair.TryGetAsync(pair.A, victim))!.State);
        Assert.Equal(0, Repo.Ferry("ps", "--on", pair.A.Url).ExitCode);
    }

    [Fact]
    public async Task A_restarted_agent_adopts_its_running_workloads()
    {
        var id = Long();
        var before = (await pair.TryGetAsync(pair.A, id))!;
        pair.A.Restart();
        var after = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.Running, after!.State);
        Assert.Equal(before.Pid, after.Pid);
        Assert.Equal(0, Repo.Ferry("stop", id, "--on", pair.A.Url).ExitCode);
    }

    [Fact]
    public async Task Unknown_tracking_is_refused_with_a_clear_message_and_the_workload_stays()
    {
        var id = Long();
        var m = Repo.Ferry("migrate", id, "--from", pair.A.Url, "--to", pair.B.Url, "--strategy", "precopy", "--tracking", "hardware");
        Assert.Equal(2, m.ExitCode);
        Assert.Contains("hardware", m.Stderr, StringComparison.Ordinal);
        Assert.Equal(WorkloadStates.Running, (await pair.TryGetAsync(pair.A, id))!.State);
        Assert.Null(await pair.TryGetAsync(pair.B, id));
        Assert.Equal(0, Repo.Ferry("stop", id, "--on", pair.A.Url).ExitCode);
    }

    [Fact]
    public void Errors_name_what_went_wrong_and_where()
    {
        var unreachable = Repo.Ferry("ps", "--on", "http://127.0.0.1:1");
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("cannot reach the agent at http://127.0.0.1:1", unreachable.Stderr, StringComparison.Ordinal);

        var badUrl = Repo.Ferry("ps", "--on", "ftp://somewhere:21");
        Assert.Equal(2, badUrl.ExitCode);
        Assert.Contains("only http://", badUrl.Stderr, StringComparison.Ordinal);

        var unknown = Repo.Ferry("stop", "nosuchid", "--on", pair.A.Url);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no workload 'nosuchid' on agent alpha", unknown.Stderr, StringComparison.Ordinal);

        var unknownMigrate = Repo.Ferry("migrate", "nosuchid", "--from", pair.A.Url, "--to", pair.B.Url);
        Assert.Equal(1, unknownMigrate.ExitCode);
        Assert.Contains("no workload 'nosuchid'", unknownMigrate.Stderr, StringComparison.Ordinal);

        var badStrategy = Repo.Ferry("migrate", "x", "--from", pair.A.Url, "--to", pair.B.Url, "--strategy", "teleport");
        Assert.Equal(2, badStrategy.ExitCode);
        Assert.Contains("unknown strategy 'teleport'", badStrategy.Stderr, StringComparison.Ordinal);

        var notWasm = Path.Combine(pair.Root, "not.wasm");
        File.WriteAllText(notWasm, "hello");
        var refused = Repo.Ferry("run", "--on", pair.A.Url, notWasm);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("not valid WebAssembly", refused.Stderr, StringComparison.Ordinal);

        var missing = Repo.Ferry("run", "--on", pair.A.Url, "/nonexistent/x.wasm");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("/nonexistent/x.wasm", missing.Stderr, StringComparison.Ordinal);

        var dirRemote = Repo.Ferry("run", "--on", pair.A.Url, "--dir", "/tmp", Repo.Wasm("microbench"));
        Assert.Equal(2, dirRemote.ExitCode);
    }

    [Fact]
    public async Task The_stream_endpoint_upgrades_only_what_it_should()
    {
        var port = new Uri(pair.B.Url).Port;
        var plain = await RawAsync(port, $"GET /v1/migrations/{Guid.NewGuid()}/streams HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 426", plain, StringComparison.Ordinal);
        var unknown = await RawAsync(port, $"GET /v1/migrations/{Guid.NewGuid()}/streams HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ferry-migration/1\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 404", unknown, StringComparison.Ordinal);
        Assert.Contains("no incoming migration", unknown, StringComparison.Ordinal);
        var bad = await RawAsync(port, "POST /v1/migrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{nope");
        Assert.StartsWith("HTTP/1.1 400", bad, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_HTTP_API_fills_in_documented_defaults()
    {
        using var http = new HttpClient { BaseAddress = new Uri(pair.A.Url), Timeout = TimeSpan.FromMinutes(2) };
        var module = Convert.ToBase64String(await File.ReadAllBytesAsync(Repo.Wasm("microbench")));
        var created = await http.PostAsync("/v1/workloads", new StringContent(
            $"{{\"moduleBase64\":\"{module}\",\"args\":[\"--mem\",\"8M\",\"--seconds\",\"60\"]}}", Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        var w = JsonSerializer.Deserialize(await created.Content.ReadAsStringAsync(), AgentJson.Default.WorkloadInfo)!;
        Assert.Equal("module", w.Name);
        // Only "to": pre-copy, compiler tracking, 20 ms, 4 streams.
        var migrate = await http.PostAsync($"/v1/workloads/{w.Id}/migrations", new StringContent($"{{\"to\":\"{pair.B.Url}\"}}", Encoding.UTF8, "application/json"));
        var lines = (await migrate.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("accepted", JsonSerializer.Deserialize(lines[0], AgentJson.Default.MigrationEvent)!.Event);
        var result = JsonSerializer.Deserialize(lines[^1], AgentJson.Default.MigrationEvent)!;
        Assert.True(result.Ok, lines[^1]);
        Assert.Equal(Migration.Protocol.Strategy.PreCopy, result.Report!.Strategy);
        Assert.Equal(Migration.Protocol.TrackingMethod.Compiler, result.Report.Tracking);
        Assert.Equal(0, Repo.Ferry("stop", w.Id, "--on", pair.B.Url).ExitCode);
    }

    private static async Task<string> RawAsync(int port, string request)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await stream.ReadAsync(buffer, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Fact]
    public async Task A_workload_migrates_there_and_back_under_the_same_id()
    {
        var (id, there) = await pair.MigrateMidRunAsync("btree", ["--mem", "16M", "--seconds", "10", "--progress", "0.2"], ["--strategy", "stopcopy"]);
        Assert.True(there.ExitCode == 0, there.ToString());
        // The destination agent handed the source's connections to the destination runtime; it relayed nothing.
        Assert.Contains("5 migration streams connected: 5 handed over by the agent, 0 relayed", pair.RuntimeLog(pair.B, id), StringComparison.Ordinal);
        var back = Repo.Ferry("migrate", id, "--from", pair.B.Url, "--to", pair.A.Url, "--strategy", "precopy", "--max-rounds", "2", "--json");
        Assert.True(back.ExitCode == 0, back.ToString());
        var output = await pair.WaitForEndAsync(pair.A, id);
        Assert.Equal(Repo.NativeReference("btree", "16M", Repo.OpsOf(output)), output);
        Assert.Equal(WorkloadStates.MigratedAway, (await pair.TryGetAsync(pair.B, id))!.State);
        Assert.Equal(WorkloadStates.Exited, (await pair.TryGetAsync(pair.A, id))!.State);
    }
}
