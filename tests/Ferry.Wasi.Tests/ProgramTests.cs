using System.Diagnostics;
using System.Text;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>
/// Real programs from Debian sources (Lua 5.4, SQLite's shell), built by programs/build for wasm32-wasi and natively
/// from the same sources, must print the same; Flite (npm) must write the same WAV bytes as under node's WASI.
/// The first run fetches and builds them (about 2 minutes); later runs reuse build/programs.
/// </summary>
public sealed class ProgramFixture
{
    public ProgramFixture()
    {
        var sw = Stopwatch.StartNew();
        var r = Env.Run("bash", [Path.Combine(Env.RepoRoot, "programs", "build")], timeoutSeconds: 1200);
        if (r.ExitCode != 0) throw new InvalidOperationException("programs/build failed:\n" + r.Stderr);
        BuildTime = sw.Elapsed;
    }

    public TimeSpan BuildTime { get; }
    public static string Bin(string name) => Path.Combine(Env.BuildDir, "programs", name);

    private readonly Dictionary<string, CompiledModule> compiled = [];

    /// <summary>Each module compiled once for the whole class (instances are fresh per run).</summary>
    public CompiledModule Compiled(string name)
    {
        lock (compiled)
        {
            if (!compiled.TryGetValue(name, out var c)) compiled[name] = c = Env.Compile(File.ReadAllBytes(Bin(name)));
            return c;
        }
    }

    /// <summary>Runs a WASI program in-process with <paramref name="dir"/> preopened as ".".</summary>
    public (int Code, string Out, string Err) RunWasm(string name, string dir, string[] args, byte[]? stdin = null)
    {
        var run = new WasiRun(Compiled(name), r => new WasiContext(r.Captured(new WasiOptions
        {
            Args = [name, .. args],
            Preopens = [new WasiPreopen(dir, ".")],
        }) with
        { Stdin = WasiStdio.FromStream(new MemoryStream(stdin ?? [])) }));
        using (run)
        {
            var code = Ferry.Wasm.Hosting.WasmThread.Run(run.Start);
            return (code, run.Out, run.Err);
        }
    }
}

public sealed class ProgramTests(ProgramFixture programs) : IClassFixture<ProgramFixture>
{
    public static TheoryData<string> LuaPrograms()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(Env.RepoRoot, "programs", "lua", "tests"), "*.lua").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(LuaPrograms))]
    public void Lua_program_prints_the_same_as_native_lua(string script)
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Env.RepoRoot, "programs", "lua", "tests", script), dir[script]);
        var native = Env.Run(ProgramFixture.Bin("lua.native"), [script], workDir: dir.Path);
        Assert.Equal(0, native.ExitCode);
        var (code, output, err) = programs.RunWasm("lua.wasm", dir.Path, [script]);
        Assert.Equal("", err);
        Assert.Equal(0, code);
        Assert.Equal(native.Out, output);
        Assert.True(output.Length > 10);
    }

    [Fact]
    public void Lua_reports_an_uncaught_error_on_stderr_and_exits_1()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["boom.lua"], "print('before')\nerror('boom')\n");
        var (code, output, err) = programs.RunWasm("lua.wasm", dir.Path, ["boom.lua"]);
        Assert.Equal(1, code);
        Assert.Equal("before\n", output);
        Assert.StartsWith("lua: boom.lua:2: boom", err);
    }

    private const string CreateSql = """
        CREATE TABLE city(name TEXT PRIMARY KEY, country TEXT, population INTEGER, area REAL);
        INSERT INTO city VALUES ('Paris','FR',2148000,105.4),('Lyon','FR',513000,47.9),('Berlin','DE',3645000,891.8),
          ('Hamburg','DE',1841000,755.2),('Rome','IT',2873000,1285.0),('Milan','IT',1352000,181.8);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
          INSERT INTO city SELECT 'town' || i, 'XX', i * 37 % 1000, i / 7.0 FROM n;
        CREATE INDEX city_country ON city(country);
        SELECT country, count(*), sum(population), printf('%.2f', avg(area)) FROM city GROUP BY country ORDER BY country;
        SELECT name FROM city WHERE population > 1000000 ORDER BY population DESC;
        """;

    private const string ReopenSql = """
        .tables
        SELECT count(*), max(population), min(name) FROM city;
        UPDATE city SET population = population + 1 WHERE country = 'FR';
        SELECT name, population FROM city WHERE country = 'FR' ORDER BY name;
        DELETE FROM city WHERE country = 'XX' AND population < 500;
        SELECT count(*) FROM city;
        PRAGMA integrity_check;
        SELECT json_object('n', count(*)) FROM city;
        """;

    [Fact]
    public void Sqlite_creates_queries_and_reopens_a_database_like_native_sqlite()
    {
        using var wasmDir = new TempDir();
        using var nativeDir = new TempDir();
        var outputs = new List<(string Native, string Wasm)>();
        foreach (var sql in new[] { CreateSql, ReopenSql })
        {
            var native = Env.Run(ProgramFixture.Bin("sqlite3.native"), ["test.db"], workDir: nativeDir.Path, stdin: Encoding.UTF8.GetBytes(sql));
            Assert.Equal(0, native.ExitCode);
            var (code, output, _) = programs.RunWasm("sqlite3.wasm", wasmDir.Path, ["test.db"], Encoding.UTF8.GetBytes(sql));
            Assert.Equal(0, code);
            outputs.Add((native.Out, output));
        }
        Assert.Equal(outputs[0].Native, outputs[0].Wasm);
        Assert.Equal(outputs[1].Native, outputs[1].Wasm);
        Assert.Contains("Paris|2148001", outputs[1].Wasm);
        Assert.Contains("ok", outputs[1].Wasm);
        Assert.True(new FileInfo(wasmDir["test.db"]).Length > 8192);
        // The database file is a real SQLite file that the native shell reads too.
        var cross = Env.Run(ProgramFixture.Bin("sqlite3.native"), [wasmDir["test.db"], "SELECT count(*) FROM city;"]);
        Assert.Equal(0, cross.ExitCode);
        Assert.Contains($"{{\"n\":{cross.Out.Trim()}}}", outputs[1].Wasm);
    }

    [Fact]
    public void Flite_writes_the_same_wav_as_node_wasi()
    {
        using var ferryDir = new TempDir();
        using var nodeDir = new TempDir();
        string[] args = ["-t", "Ferry moves running programs between machines.", "-o", "out.wav"];
        var viaFerry = Env.Ferry(["run", "--dir", ".", ProgramFixture.Bin("flite.wasm"), .. args], workDir: ferryDir.Path);
        Assert.True(viaFerry.ExitCode == 0, viaFerry.Stderr);
        var viaNode = Env.Run("node", [Path.Combine(Env.RepoRoot, "programs", "node-wasi.mjs"), ProgramFixture.Bin("flite.wasm"), .. args], workDir: nodeDir.Path);
        Assert.True(viaNode.ExitCode == 0, viaNode.Stderr);
        var a = File.ReadAllBytes(ferryDir["out.wav"]);
        var b = File.ReadAllBytes(nodeDir["out.wav"]);
        Assert.True(a.Length > 10_000);
        Assert.Equal("RIFF", Encoding.ASCII.GetString(a, 0, 4));
        Assert.Equal(b, a);
    }
}
