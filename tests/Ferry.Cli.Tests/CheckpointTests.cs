using System.Text;

namespace Ferry.Cli.Tests;

/// <summary>
/// Checkpoint and restore through the real CLI: every suite workload, Lua, SQLite and Flite is checkpointed at ten
/// random moments — a chain of processes, each restoring the previous snapshot and checkpointing again — and the
/// output of the whole chain (and any file it writes) must equal the uninterrupted run's.
/// </summary>
public sealed class CheckpointTests
{
    /// <param name="Wasi">False for programs on the ferry ABI, which takes no preopened directories.</param>
    public sealed record Program(string Name, string Module, string[] Args, string? OutputFile = null, string[]? InputFiles = null, bool Wasi = true)
    {
        public string[] Dir(string hostDir) => Wasi ? ["--dir", $"{hostDir}::."] : [];
    }

    public static TheoryData<string> Workloads() =>
        ["btree", "hashjoin", "bfs", "pagerank", "kvstore", "xsbench", "svm", "blockchain", "microbench"];

    private static readonly Dictionary<string, string[]> WorkloadArgs = new()
    {
        ["btree"] = ["--mem", "16M", "--ops", "800000"],
        ["hashjoin"] = ["--mem", "16M", "--ops", "8000000"],
        ["bfs"] = ["--mem", "16M", "--ops", "150"],
        ["pagerank"] = ["--mem", "16M", "--ops", "2000000"],
        ["kvstore"] = ["--mem", "16M", "--ops", "1500000"],
        ["xsbench"] = ["--mem", "16M", "--ops", "800000"],
        ["svm"] = ["--mem", "16M", "--ops", "800000"],
        ["blockchain"] = ["--mem", "16M", "--ops", "800000"],
        ["microbench"] = ["--mem", "16M", "--ops", "20000000"],
    };

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Workload_survives_ten_checkpoints(string name)
    {
        var module = Cli.Workload(name);
        var native = Cli.Run(Cli.Workload(name, "native"), WorkloadArgs[name]);
        Assert.Equal(0, native.ExitCode);
        var chain = CheckpointChain(new Program(name, module, WorkloadArgs[name]), seed: name.GetHashCode(StringComparison.Ordinal));
        Assert.Equal(native.Out, chain.Out);
        Assert.Contains("checksum", chain.Out);
    }

    /// <summary>The freestanding memory64 build on the ferry host ABI: its clock and arguments travel too.</summary>
    [Fact]
    public void Wasm64_microbench_survives_ten_checkpoints()
    {
        string[] args = ["--mem", "16M", "--ops", "20000000"];
        var native = Cli.Run(Cli.Workload("microbench", "native"), args);
        Assert.Equal(0, native.ExitCode);
        var module = Cli.Workload("microbench64", "wasm64");
        var chain = CheckpointChain(new Program("microbench64", module, args, Wasi: false), seed: 64);
        Assert.Equal(native.Out, chain.Out);
    }

    [Fact]
    public void Lua_survives_ten_checkpoints()
    {
        var dir = Cli.Programs();
        var script = Path.Combine(Cli.RepoRoot, "programs", "lua", "tests", "nbody.lua");
        var program = new Program("lua", Path.Combine(dir, "lua.wasm"), ["nbody.lua", "400000"], InputFiles: [script]);
        var chain = CheckpointChain(program, seed: 11);
        using var work = new TempDir();
        File.Copy(script, work["nbody.lua"]);
        var native = Cli.Run(Path.Combine(dir, "lua.native"), ["nbody.lua", "400000"], work.Path);
        Assert.Equal(native.Out, chain.Out);
    }

    [Fact]
    public void Sqlite_survives_ten_checkpoints_with_a_database_file_open()
    {
        var dir = Cli.Programs();
        const string sql = """
            CREATE TABLE t(a INTEGER PRIMARY KEY, b INTEGER, c TEXT);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200000)
              INSERT INTO t SELECT i, (i * 7919) % 100003, printf('row-%08d', i) FROM n;
            CREATE INDEX tb ON t(b);
            SELECT count(*), sum(b), max(c) FROM t WHERE b % 3 = 0;
            SELECT b % 100 AS g, count(*), avg(a) FROM t GROUP BY g ORDER BY g LIMIT 5;
            SELECT count(*) FROM t AS x JOIN t AS y ON x.b = y.a WHERE y.b < 40000;
            """;
        var sqlFile = Path.Combine(Path.GetTempPath(), $"ferry-ckpt-{Guid.NewGuid():N}.sql");
        File.WriteAllText(sqlFile, sql);
        try
        {
            var program = new Program("sqlite3", Path.Combine(dir, "sqlite3.wasm"), ["test.db", ".read bench.sql"],
                OutputFile: "test.db", InputFiles: [sqlFile]);
            var chain = CheckpointChain(program, seed: 23, renameInputs: ["bench.sql"]);
            using var work = new TempDir();
            File.Copy(sqlFile, work["bench.sql"]);
            var native = Cli.Run(Path.Combine(dir, "sqlite3.native"), ["test.db", ".read bench.sql"], work.Path);
            Assert.Equal(native.Out, chain.Out);
            // The database written across ten processes reads back the same as the native one.
            var check = Cli.Run(Path.Combine(dir, "sqlite3.native"), [chain.OutputFile!, "SELECT count(*), sum(b) FROM t; PRAGMA integrity_check;"]);
            var nativeCheck = Cli.Run(Path.Combine(dir, "sqlite3.native"), [Path.Combine(work.Path, "test.db"), "SELECT count(*), sum(b) FROM t; PRAGMA integrity_check;"]);
            Assert.Equal(nativeCheck.Out, check.Out);
            Assert.Contains("ok", check.Out);
        }
        finally
        {
            File.Delete(sqlFile);
        }
    }

    [Fact]
    public void Flite_survives_ten_checkpoints_and_writes_the_same_wav()
    {
        var dir = Cli.Programs();
        var text = string.Concat(Enumerable.Repeat("Ferry moves running programs between hosts without stopping them. ", 8));
        var program = new Program("flite", Path.Combine(dir, "flite.wasm"), ["-t", text, "-o", "out.wav"], OutputFile: "out.wav");
        using var reference = new TempDir();
        var plain = Cli.Ferry(["run", "--dir", $"{reference.Path}::.", program.Module, .. program.Args]);
        Assert.Equal(0, plain.ExitCode);
        var chain = CheckpointChain(program, seed: 37);
        Assert.Equal(File.ReadAllBytes(reference["out.wav"]), File.ReadAllBytes(chain.OutputFile!));
    }

    public sealed record ChainResult(string Out, int Checkpoints, string? OutputFile);

    /// <summary>
    /// Checkpoints the program at random moments, each in a new process restoring the previous snapshot, until ten
    /// checkpoints have been taken; every chain must end with the uninterrupted output. Delays are a few percent of
    /// the uninterrupted guest run time; if a chain ends before ten (timing on a loaded machine), the next chain
    /// uses shorter delays. The output of the last chain is returned.
    /// </summary>
    private static ChainResult CheckpointChain(Program p, int seed, string[]? renameInputs = null)
    {
        var runMs = GuestRunTime(p, renameInputs);
        var rng = new Random(seed);
        var total = 0;
        ChainResult? last = null;
        for (var attempt = 0; attempt < 4 && total < 10; attempt++)
        {
            var scale = 1.0 / (1 << attempt);
            last = OneChain(p, renameInputs, () => Delay(rng, runMs * scale), 10 - total);
            total += last.Checkpoints;
        }
        Assert.True(total >= 10, $"only {total} checkpoints happened (guest run time {runMs:0} ms)");
        return last!;
    }

    private static void PrepareInputs(Program p, string dir, string[]? renameInputs)
    {
        var inputs = p.InputFiles ?? [];
        for (var i = 0; i < inputs.Length; i++) File.Copy(inputs[i], Path.Combine(dir, renameInputs?[i] ?? Path.GetFileName(inputs[i])));
    }

    /// <summary>How long the guest runs uninterrupted (reported by the runner with FERRY_TIMING=1).</summary>
    private static double GuestRunTime(Program p, string[]? renameInputs)
    {
        using var probe = new TempDir();
        PrepareInputs(p, probe.Path, renameInputs);
        var timing = Cli.Run("dotnet", [Cli.FerryDll, "run", .. p.Dir(probe.Path), "--snapshot", probe["unused.snap"], p.Module, .. p.Args],
            env: new Dictionary<string, string> { ["FERRY_TIMING"] = "1" });
        Assert.True(timing.ExitCode == 0, timing.Err);
        var ran = System.Text.RegularExpressions.Regex.Match(timing.Err, @"ferry: guest ran (\d+) ms");
        Assert.True(ran.Success, "no guest time reported:\n" + timing.Err);
        var runMs = double.Parse(ran.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // Delays scale with the run time (and shrink further if a chain ends early), so a fast machine only makes
        // them shorter; below ~30 ms even the 2 ms minimum delay could not fit ten checkpoints.
        Assert.True(runMs >= 30, $"the program runs only {runMs} ms; too short to checkpoint ten times");
        return runMs;
    }

    /// <summary>One chain: run with a checkpoint, then restore-and-checkpoint up to <paramref name="wanted"/> times, then restore to the end.</summary>
    private static ChainResult OneChain(Program p, string[]? renameInputs, Func<string> delay, int wanted)
    {
        using var work = new TempDir();
        PrepareInputs(p, work.Path, renameInputs);
        var output = new StringBuilder();
        var snapshot = Path.Combine(Path.GetTempPath(), $"ferry-chain-{Guid.NewGuid():N}.snap");
        var marker = $"checkpointed {snapshot}\n";
        var checkpoints = 0;
        try
        {
            string[] next = ["run", .. p.Dir(work.Path), "--snapshot", snapshot, "--checkpoint-after", delay(), p.Module, .. p.Args];
            while (true)
            {
                var r = Cli.Ferry(next);
                Assert.True(r.ExitCode == 0, $"after {checkpoints} checkpoints: exit {r.ExitCode}\n{r.Err}");
                if (!r.Out.EndsWith(marker, StringComparison.Ordinal))
                {
                    output.Append(r.Out);
                    break;
                }
                output.Append(r.Out[..^marker.Length]);
                checkpoints++;
                next = checkpoints < wanted
                    ? ["restore", .. p.Dir(work.Path), "--snapshot", snapshot, "--checkpoint-after", delay(), snapshot]
                    : ["restore", .. p.Dir(work.Path), snapshot];
            }
        }
        finally
        {
            File.Delete(snapshot);
        }
        string? kept = null;
        if (p.OutputFile is not null)
        {
            kept = Path.Combine(Path.GetTempPath(), $"ferry-chain-out-{Guid.NewGuid():N}-{p.OutputFile}");
            File.Copy(work[p.OutputFile], kept);
        }
        return new ChainResult(output.ToString(), checkpoints, kept);
    }

    /// <summary>1–3 % of the uninterrupted guest run time: ten of them end well before the program does.</summary>
    private static string Delay(Random rng, double runMs) =>
        $"{Math.Max(2, (int)(runMs * (0.01 + rng.NextDouble() * 0.02)))}ms";
}
