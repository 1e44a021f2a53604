using System.Diagnostics;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;

namespace Ferry.Agent.Tests;

/// <summary>
/// Confidential workloads between two real agents sharing a fleet trust file, with every byte of the migration
/// going through a recording loopback proxy in front of the destination agent (the `--to` URL): sealed pages
/// never show the guest's memory, a flipped byte fails the migration while the source runs on with the state of an
/// uninterrupted run, and a destination whose platform is not in the trust file is refused.
/// </summary>
public sealed class ConfidentialMigrationTests
{
    /// <summary>
    /// Fills 2 MiB at 64 KiB with the words "SECRET\0\0" | i &lt;&lt; 48 (computed, so the pattern is in memory but not in the
    /// module's bytes), reports "progress 1" on stderr, spins for 6 s of wall-clock time (the migration happens then),
    /// checks every word and prints "secret intact" or "secret BROKEN".
    /// </summary>
    private const string SecretWat = """
        (module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
          (memory (export "memory") 48)
          (data (i32.const 0) "progress 1\n")
          (data (i32.const 16) "secret intact\n")
          (data (i32.const 32) "secret BROKEN\n")
          (func $write (param $fd i32) (param $ptr i32) (param $len i32)
            (i32.store (i32.const 64) (local.get $ptr))
            (i32.store (i32.const 68) (local.get $len))
            (drop (call $fd_write (local.get $fd) (i32.const 64) (i32.const 1) (i32.const 72))))
          (func $now (result i64)
            (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 80)))
            (i64.load (i32.const 80)))
          (func $word (param $i i32) (result i64)
            (i64.or (i64.const 0x0000544552434553) (i64.shl (i64.extend_i32_u (local.get $i)) (i64.const 48))))
          (func (export "_start") (local $i i32) (local $end i64) (local $ok i32)
            (loop $fill
              (i64.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 3))) (call $word (local.get $i)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $fill (i32.lt_u (local.get $i) (i32.const 262144))))
            (call $write (i32.const 2) (i32.const 0) (i32.const 11))
            (local.set $end (i64.add (call $now) (i64.const 6000000000)))
            (loop $spin (br_if $spin (i64.lt_u (call $now) (local.get $end))))
            (local.set $ok (i32.const 1))
            (local.set $i (i32.const 0))
            (loop $check
              (if (i64.ne (i64.load (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 3)))) (call $word (local.get $i)))
                (then (local.set $ok (i32.const 0))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $check (i32.lt_u (local.get $i) (i32.const 262144))))
            (if (local.get $ok)
              (then (call $write (i32.const 1) (i32.const 16) (i32.const 14)))
              (else (call $write (i32.const 1) (i32.const 32) (i32.const 14))))))
        """;

    private static string BuildSecretModule(string dir) => SecretModule.Build(dir, SecretWat);

    [Fact]
    public async Task Sealed_migration_hides_memory_that_a_plain_migration_exposes()
    {
        using var pair = AgentPair.WithTrustFile();
        using var proxy = new RecordingProxy(new Uri(pair.B.Url));
        var module = BuildSecretModule(pair.Root);
        var pattern = SecretModule.Pattern();

        // Plain: the pages cross the network as they are.
        var (plainId, plain) = await pair.MigrateMidRunAsync("secret", [], ["--strategy", "stopcopy"], to: proxy.Url, module: module);
        Assert.True(plain.ExitCode == 0, $"plain migration failed: {plain}\nA:\n{pair.A.Log}\nB:\n{pair.B.Log}");
        Assert.Equal("secret intact\n", await pair.WaitForEndAsync(pair.B, plainId));
        Assert.True(proxy.Contains(pattern), "the plain migration's recording should contain the guest's memory (otherwise this test proves nothing)");

        // Confidential: same module, same path; only sealed records and handshake messages cross it.
        proxy.Clear();
        var (id, m) = await pair.MigrateMidRunAsync("secret", [], ["--strategy", "stopcopy"], runOptions: ["--confidential"], to: proxy.Url, module: module);
        Assert.True(m.ExitCode == 0, $"confidential migration failed: {m}\nA:\n{pair.A.Log}\nB:\n{pair.B.Log}");
        Assert.Equal("secret intact\n", await pair.WaitForEndAsync(pair.B, id));
        Assert.True(proxy.RecordedBytes > 2 << 20, $"only {proxy.RecordedBytes} bytes went through the proxy: the pages did not");
        Assert.False(proxy.Contains(pattern), "a sealed migration leaked the guest's memory");
        Assert.False(proxy.Contains(pattern.AsSpan(0, 16)), "a sealed migration leaked part of the guest's memory");

        // Both sides report it confidential with the same measurement.
        var source = await pair.TryGetAsync(pair.A, id);
        var destination = await pair.TryGetAsync(pair.B, id);
        Assert.True(source!.Confidential && destination!.Confidential);
        Assert.Matches("^[0-9a-f]{64}$", source.Measurement ?? "");
        Assert.Equal(source.Measurement, destination.Measurement);
        Assert.Equal(WorkloadStates.MigratedAway, source.State);
        var ps = Repo.Ferry("ps", "--on", pair.B.Url);
        Assert.Contains($"yes {source.Measurement![..12]}", ps.Stdout);
    }

    [Fact]
    public async Task Flipped_byte_in_a_sealed_page_stream_fails_the_migration_and_the_source_runs_on()
    {
        using var pair = AgentPair.WithTrustFile();
        using var proxy = new RecordingProxy(new Uri(pair.B.Url)) { TamperStream = 1 };
        var (id, m) = await pair.MigrateMidRunAsync("microbench", ["--mem", "16M", "--seconds", "3", "--progress", "0.2"],
            ["--strategy", "stopcopy", "--streams", "1"], runOptions: ["--confidential"], to: proxy.Url);
        Assert.True(proxy.Tampered, $"the proxy never saw page stream 1: {m}");
        Assert.Equal(1, m.ExitCode);
        using (var doc = JsonDocument.Parse(m.Stdout))
        {
            var root = doc.RootElement;
            Assert.False(root.GetProperty("succeeded").GetBoolean());
            Assert.True(root.GetProperty("sourceResumed").GetBoolean(), $"the source should resume: {m}");
            var error = root.GetProperty("error").GetString() ?? "";
            Assert.True(error.Contains("authentication failed", StringComparison.Ordinal), $"not the destination's reason: {error}");
            Assert.Contains("continues on the source", error);
        }
        await AssertSourceFinishesAsUninterruptedAsync(pair, id);
    }

    [Fact]
    public async Task Lost_commit_the_destinations_sealed_discard_proof_lets_the_source_resume()
    {
        // The source commits (it will never run the guest again on its own authority) but the Commit never reaches
        // the destination. Without more, no copy would run: a confidential source cannot take the destination
        // agent's "it did not start" for it. The destination runtime, discarding the state for good, seals a proof
        // under the session key; the source gets it through the destination agent, checks it and resumes.
        using var pair = AgentPair.WithTrustFile();
        using var proxy = new RecordingProxy(new Uri(pair.B.Url)) { DropCommit = true };
        var (id, m) = await pair.MigrateMidRunAsync("microbench", ["--mem", "16M", "--seconds", "3", "--progress", "0.2"],
            ["--strategy", "stopcopy"], runOptions: ["--confidential"], to: proxy.Url);
        Assert.True(proxy.CommitDropped, $"the proxy never saw the Commit: {m}");
        Assert.Equal(1, m.ExitCode);
        using (var doc = JsonDocument.Parse(m.Stdout))
        {
            var root = doc.RootElement;
            Assert.False(root.GetProperty("succeeded").GetBoolean());
            Assert.True(root.GetProperty("sourceResumed").GetBoolean(), $"the source should resume on the destination's proof: {m}\nA:\n{pair.A.Log}");
            Assert.Contains("continues on the source", root.GetProperty("error").GetString());
        }
        Assert.Contains("proof of discarding the state", File.ReadAllText(Path.Combine(pair.A.StateDir, "workloads", id, "stderr.log")));
        await AssertSourceFinishesAsUninterruptedAsync(pair, id);
    }

    [Fact]
    public async Task Destination_outside_the_trust_file_is_refused_and_the_source_runs_on()
    {
        using var pair = AgentPair.WithTrustFile(trustBeta: false);
        // `ferry attest` checks a host's own quote against the trust file: alpha's is accepted, beta's refused.
        var alpha = Repo.Ferry("attest", "--state-dir", pair.A.StateDir, "--trust", pair.TrustFile!, "--name", "alpha", "--json");
        Assert.True(alpha.ExitCode == 0, alpha.ToString());
        using (var doc = JsonDocument.Parse(alpha.Stdout)) Assert.True(doc.RootElement.GetProperty("accepted").GetBoolean());
        var beta = Repo.Ferry("attest", "--state-dir", pair.B.StateDir, "--trust", pair.TrustFile!, "--name", "beta", "--json");
        Assert.Equal(1, beta.ExitCode);
        using (var doc = JsonDocument.Parse(beta.Stdout))
        {
            Assert.False(doc.RootElement.GetProperty("accepted").GetBoolean());
            Assert.Contains("not in the trust file", doc.RootElement.GetProperty("verdict").GetString());
        }

        var (id, m) = await pair.MigrateMidRunAsync("microbench", ["--mem", "16M", "--seconds", "3", "--progress", "0.2"],
            ["--strategy", "stopcopy"], runOptions: ["--confidential"]);
        Assert.Equal(1, m.ExitCode);
        using (var doc = JsonDocument.Parse(m.Stdout))
        {
            var root = doc.RootElement;
            Assert.False(root.GetProperty("succeeded").GetBoolean());
            Assert.True(root.GetProperty("sourceResumed").GetBoolean(), $"the source should resume: {m}");
            Assert.Contains("untrusted platform", root.GetProperty("error").GetString());
        }
        Assert.Contains("untrusted platform", m.Stderr);
        await AssertSourceFinishesAsUninterruptedAsync(pair, id);
    }

    /// <summary>The workload ran on at the source to the checksum of an uninterrupted run; no copy exists at the destination.</summary>
    private static async Task AssertSourceFinishesAsUninterruptedAsync(AgentPair pair, string id)
    {
        var output = await pair.WaitForEndAsync(pair.A, id);
        Assert.Equal(Repo.NativeReference("microbench", "16M", Repo.OpsOf(output)), output);
        var w = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.Exited, w!.State);
        Assert.True(w.Confidential);
        var other = await pair.TryGetAsync(pair.B, id);
        Assert.True(other is null || other.State is not (WorkloadStates.Running or WorkloadStates.Exited), $"the destination lists {id} as {other?.State}");
        var sw = Stopwatch.StartNew();
        while (pair.RuntimeProcesses().Any(p => p.Dir.Contains(id, StringComparison.Ordinal)) && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(50);
        Assert.DoesNotContain(pair.RuntimeProcesses(), p => p.Dir.Contains(id, StringComparison.Ordinal));
    }
}
