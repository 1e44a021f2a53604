using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Tests.Support;

namespace Ferry.Agent.Tests;

/// <summary>
/// `ferry checkpoint ID --on URL` and `ferry restore --on URL FILE` against real agents (docs/confidential.md, "Sealed
/// checkpoints"): a confidential workload's checkpoint is sealed to the host that wrote it and holds none of its memory
/// in clear; it restores there once (never twice, never after a newer one, never tampered or truncated, never on
/// another host) and continues to the result of an uninterrupted run. A plain workload's checkpoint is a plain
/// snapshot. Every step waits on what the agents and workloads report (log lines, command results), never on time.
/// </summary>
public sealed class CheckpointTests(AgentPair pair) : IClassFixture<AgentPair>
{
    /// <summary>
    /// Fills 2 MiB at 64 KiB with the words "SECRET\0\0" | i &lt;&lt; 48 (computed, so the pattern is in memory but not in
    /// the module), reports "progress 1" on stderr, then spins until it notices it was restored after a pause (wall-clock
    /// time jumps against the guest's monotonic clock, which a restore continues from the checkpoint) or 60 s have passed,
    /// checks every word and prints "secret intact" or "secret BROKEN". So a restored copy ends soon after it resumes, and
    /// a copy that is never checkpointed still ends.
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
          (func $now (param $id i32) (result i64)
            (drop (call $clock (local.get $id) (i64.const 1) (i32.const 80)))
            (i64.load (i32.const 80)))
          (func $word (param $i i32) (result i64)
            (i64.or (i64.const 0x0000544552434553) (i64.shl (i64.extend_i32_u (local.get $i)) (i64.const 48))))
          (func (export "_start") (local $i i32) (local $end i64) (local $offset i64) (local $t i64) (local $ok i32)
            (loop $fill
              (i64.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 3))) (call $word (local.get $i)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $fill (i32.lt_u (local.get $i) (i32.const 262144))))
            (call $write (i32.const 2) (i32.const 0) (i32.const 11))
            (local.set $offset (i64.sub (call $now (i32.const 0)) (call $now (i32.const 1))))
            (local.set $end (i64.add (call $now (i32.const 0)) (i64.const 60000000000)))
            (loop $spin
              (local.set $t (call $now (i32.const 0)))
              (br_if $spin (i32.and
                (i64.lt_u (local.get $t) (local.get $end))
                (i64.lt_s (i64.sub (i64.sub (local.get $t) (call $now (i32.const 1))) (local.get $offset)) (i64.const 200000000)))))
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

    private string BuildSecretModule() =>
        SecretModule.Build(Directory.CreateDirectory(Path.Combine(pair.Root, $"secret-{Guid.NewGuid():N}")).FullName, SecretWat);

    private string TempFile(string name) => Path.Combine(pair.Root, $"{Guid.NewGuid():N}-{name}");

    /// <summary>`ferry checkpoint ID --on AGENT --output FILE --json` → its JSON output (the command must succeed).</summary>
    private static JsonElement Checkpoint(AgentProcess on, string id, string output)
    {
        var r = Repo.Ferry("checkpoint", id, "--on", on.Url, "--output", output, "--json");
        Assert.True(r.ExitCode == 0, $"ferry checkpoint failed: {r}\nagent log:\n{on.Log}");
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    /// <summary>`ferry restore --on AGENT FILE` → the new workload's id (the command must succeed).</summary>
    private static string Restore(AgentProcess on, string file)
    {
        var r = Repo.Ferry("restore", "--on", on.Url, file);
        Assert.True(r.ExitCode == 0, $"ferry restore --on failed: {r}\nagent log:\n{on.Log}");
        var id = r.Stdout.Trim();
        Assert.Matches("^[0-9a-f]{8}$", id);
        return id;
    }

    /// <summary>`ferry restore --on AGENT FILE` that must be refused: returns its stderr.</summary>
    private static string RestoreRefused(AgentProcess on, string file)
    {
        var r = Repo.Ferry("restore", "--on", on.Url, file);
        Assert.True(r.ExitCode == 1, $"the restore should have been refused: {r}");
        Assert.Equal("", r.Stdout);
        return r.Stderr;
    }

    private static bool Contains(string file, ReadOnlySpan<byte> pattern) => File.ReadAllBytes(file).AsSpan().IndexOf(pattern) >= 0;

    [Fact]
    public async Task Sealed_checkpoint_holds_no_plaintext_and_restores_once_only_on_the_host_that_wrote_it()
    {
        var module = BuildSecretModule();
        var pattern = SecretModule.Pattern();

        // Plain: the checkpoint holds the guest's memory as it is (otherwise the sealed half proves nothing).
        var plainId = pair.RunModule(pair.A, module, [], []);
        await pair.WaitForLineAsync(pair.A, plainId, "progress ");
        var plainFile = TempFile("plain.ferry");
        var plain = Checkpoint(pair.A, plainId, plainFile);
        Assert.False(plain.GetProperty("sealed").GetBoolean());
        Assert.True(Contains(plainFile, pattern), "the plain checkpoint should contain the guest's memory");

        // Confidential: the same module; the checkpoint is sealed to alpha at epoch 1 + 1.
        var id = pair.RunModule(pair.A, module, ["--confidential"], []);
        await pair.WaitForLineAsync(pair.A, id, "progress ");
        var running = await pair.TryGetAsync(pair.A, id);
        var file = TempFile("sealed.ferry");
        var c = Checkpoint(pair.A, id, file);
        Assert.Equal(WorkloadStates.Checkpointed, c.GetProperty("state").GetString());
        Assert.True(c.GetProperty("sealed").GetBoolean());
        Assert.Equal(2UL, c.GetProperty("epoch").GetUInt64());
        Assert.Equal(running!.Measurement, c.GetProperty("measurement").GetString());
        Assert.Equal(Path.GetFullPath(file), c.GetProperty("output").GetString());
        var bytes = File.ReadAllBytes(file);
        Assert.Equal(c.GetProperty("bytes").GetInt64(), bytes.LongLength);
        Assert.True(bytes.AsSpan().StartsWith("FERRYSCP"u8), "not a sealed checkpoint");
        Assert.True(bytes.Length > 2 << 20, $"only {bytes.Length} bytes: the memory is not in the checkpoint");
        Assert.False(Contains(file, pattern), "the sealed checkpoint leaked the guest's memory");
        Assert.False(Contains(file, pattern.AsSpan(0, 16)), "the sealed checkpoint leaked part of the guest's memory");
        // Writing it was a migration to disk: the running copy is gone.
        var after = await pair.TryGetAsync(pair.A, id);
        Assert.Equal(WorkloadStates.Checkpointed, after!.State);
        Assert.True(after.Checkpoint is { Sealed: true, Epoch: 2 });
        Assert.DoesNotContain(pair.RuntimeProcesses(), p => p.Dir.Contains(id, StringComparison.Ordinal));

        // Inspect shows the header only.
        var inspect = Repo.Ferry("snapshot", "inspect", file);
        Assert.True(inspect.ExitCode == 0, inspect.ToString());
        Assert.Contains("sealed checkpoint", inspect.Stdout);
        Assert.Contains(running.Measurement!, inspect.Stdout);
        Assert.Matches(@"epoch\s+2\b", inspect.Stdout);
        Assert.Contains("platform", inspect.Stdout);
        Assert.Contains("content      sealed", inspect.Stdout);
        Assert.DoesNotContain("checksum OK", inspect.Stdout);

        // A local restore cannot open it.
        var local = Repo.Ferry("restore", file);
        Assert.Equal(1, local.ExitCode);
        Assert.Contains("sealed checkpoint", local.Stderr);
        Assert.Contains("ferry restore --on", local.Stderr);

        // Refusals that must not use up the checkpoint: a flipped byte, a cut-off file, another host's platform key.
        var tampered = TempFile("tampered.ferry");
        var flipped = (byte[])bytes.Clone();
        flipped[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(tampered, flipped);
        Assert.Contains("sealed data refused (tampered)", RestoreRefused(pair.A, tampered));
        var truncated = TempFile("truncated.ferry");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 100)]);
        Assert.Contains("sealed data refused (truncated)", RestoreRefused(pair.A, truncated));
        Assert.Contains("sealed to another platform", RestoreRefused(pair.B, file));

        // On alpha it restores, and the guest finds its memory intact.
        var restored = Restore(pair.A, file);
        var info = await pair.TryGetAsync(pair.A, restored);
        Assert.True(info!.Confidential);
        Assert.Equal(running.Measurement, info.Measurement);
        Assert.Contains(id, info.RestoredFrom);
        Assert.Equal("secret intact\n", await pair.WaitForEndAsync(pair.A, restored));
        Assert.Equal(WorkloadStates.Exited, (await pair.TryGetAsync(pair.A, restored))!.State);

        // Once: a second restore of the same checkpoint would fork the workload (or roll it back).
        var again = RestoreRefused(pair.A, file);
        Assert.Contains("stale checkpoint", again);
        Assert.Contains("rollback or fork refused", again);

        // The plain checkpoint restores too (plain workloads have no epochs).
        var plainRestored = Restore(pair.A, plainFile);
        Assert.Equal("secret intact\n", await pair.WaitForEndAsync(pair.A, plainRestored));
    }

    [Fact]
    public async Task Confidential_workload_continues_from_its_checkpoint_to_the_uninterrupted_result_and_older_checkpoints_are_refused()
    {
        // Two checkpoint cycles (progress line, `ferry checkpoint`, restore) must fit in the program's guest time, whose
        // clock continues across checkpoints: 6 s ran out once on a loaded CI machine before the second checkpoint.
        var id = pair.RunModule(pair.A, Repo.Wasm("microbench"), ["--confidential"], ["--mem", "16M", "--seconds", "15", "--progress", "0.2"]);
        await pair.WaitForLineAsync(pair.A, id, "progress ");
        var first = TempFile("c1.ferry");
        Assert.Equal(2UL, Checkpoint(pair.A, id, first).GetProperty("epoch").GetUInt64());

        // Restored (epoch 2), then checkpointed again mid-run (epoch 3) and restored from that.
        var second = Restore(pair.A, first);
        await pair.WaitForLineAsync(pair.A, second, "progress ");
        var newer = TempFile("c2.ferry");
        Assert.Equal(3UL, Checkpoint(pair.A, second, newer).GetProperty("epoch").GetUInt64());
        var third = Restore(pair.A, newer);

        // The older checkpoint is a rollback now.
        var refused = RestoreRefused(pair.A, first);
        Assert.Contains("already accepted epoch 3", refused);
        Assert.Contains("rollback or fork refused", refused);

        // Two checkpoints and restores later, the result is the uninterrupted run's.
        var output = await pair.WaitForEndAsync(pair.A, third);
        Assert.Equal(Repo.NativeReference("microbench", "16M", Repo.OpsOf(output)), output);
        var w = await pair.TryGetAsync(pair.A, third);
        Assert.Equal(WorkloadStates.Exited, w!.State);
        Assert.True(w.Confidential);
        Assert.Contains(second, w.RestoredFrom);
    }

    [Fact]
    public async Task Plain_workload_checkpoint_is_a_plain_snapshot_and_restores_through_the_agent()
    {
        var id = pair.Run(pair.A, "microbench", "--mem", "16M", "--seconds", "8", "--progress", "0.2");
        await pair.WaitForLineAsync(pair.A, id, "progress ");
        var file = TempFile("plain.ferry");
        var c = Checkpoint(pair.A, id, file);
        Assert.False(c.GetProperty("sealed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, c.GetProperty("epoch").ValueKind);
        Assert.True(File.ReadAllBytes(file).AsSpan().StartsWith("FERRYSNP"u8), "not a plain snapshot");
        var inspect = Repo.Ferry("snapshot", "inspect", file);
        Assert.True(inspect.ExitCode == 0, inspect.ToString());
        Assert.Contains("checksum OK", inspect.Stdout);
        Assert.Contains("microbench.wasm", inspect.Stdout);

        // Checkpointed workloads do not run on; checkpointing one again is refused.
        var twice = Repo.Ferry("checkpoint", id, "--on", pair.A.Url);
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains("only a running workload can be checkpointed", twice.Stderr);

        var restored = Restore(pair.A, file);
        var w = await pair.TryGetAsync(pair.A, restored);
        Assert.False(w!.Confidential);
        Assert.Equal(["--mem", "16M", "--seconds", "8", "--progress", "0.2"], w.Args);
        var output = await pair.WaitForEndAsync(pair.A, restored);
        Assert.Equal(Repo.NativeReference("microbench", "16M", Repo.OpsOf(output)), output);
    }
}
