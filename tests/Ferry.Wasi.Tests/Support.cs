using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>Repository locations, temporary directories, and external tools (clang, wat2wasm, node, the ferry CLI).</summary>
public static class Env
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string BuildDir => Path.Combine(RepoRoot, "build");

    /// <summary>Where compiled test programs are cached, keyed by a hash of their source and flags.</summary>
    public static string Cache { get; } = Directory.CreateDirectory(Path.Combine(RepoRoot, "build", "wasi-tests")).FullName;

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (Ferry.sln) above " + AppContext.BaseDirectory);
    }

    /// <summary>The ferry CLI built next to this test assembly's configuration.</summary>
    public static string FerryDll
    {
        get
        {
            var config = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
            var dll = Path.Combine(RepoRoot, "src", "Ferry.Cli", "bin", config, "net10.0", "ferry.dll");
            if (!File.Exists(dll)) throw new FileNotFoundException("the ferry CLI is not built: " + dll);
            return dll;
        }
    }

    public sealed record Result(int ExitCode, byte[] Stdout, string Stderr)
    {
        public string Out => Encoding.UTF8.GetString(Stdout);
    }

    /// <summary>Runs a process to completion (bounded), feeding <paramref name="stdin"/>, capturing both outputs.</summary>
    public static Result Run(string file, IEnumerable<string> args, string? workDir = null, byte[]? stdin = null, int timeoutSeconds = 240)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workDir ?? RepoRoot,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NODE_NO_WARNINGS"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = new MemoryStream();
        var outTask = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var errTask = p.StandardError.ReadToEndAsync();
        if (stdin is not null) p.StandardInput.BaseStream.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutSeconds} s");
        }
        outTask.Wait();
        return new Result(p.ExitCode, stdout.ToArray(), errTask.Result);
    }

    public static Result Ferry(IEnumerable<string> args, string? workDir = null, byte[]? stdin = null) =>
        Run("dotnet", [FerryDll, .. args], workDir, stdin);

    /// <summary>Compiles C to a wasm32-wasi command with clang -O2 (cached by content).</summary>
    public static string CompileC(string source, params string[] flags)
    {
        var key = Hash(source + "\0" + string.Join(' ', flags));
        var output = Path.Combine(Cache, $"c-{key}.wasm");
        if (File.Exists(output)) return output;
        var src = Path.Combine(Cache, $"c-{key}.c");
        File.WriteAllText(src, source);
        var tmp = output + "." + Guid.NewGuid().ToString("N");
        var r = Run("clang", ["--target=wasm32-wasi", "-O2", "-o", tmp, src, .. flags]);
        if (r.ExitCode != 0) throw new InvalidOperationException("clang failed:\n" + r.Stderr);
        File.Move(tmp, output, overwrite: true);
        return output;
    }

    /// <summary>Assembles WebAssembly text with wat2wasm (names kept).</summary>
    public static byte[] Wat(string wat)
    {
        var key = Hash(wat);
        var output = Path.Combine(Cache, $"w-{key}.wasm");
        if (!File.Exists(output))
        {
            var src = Path.Combine(Cache, $"w-{key}.wat");
            File.WriteAllText(src, wat);
            var tmp = output + "." + Guid.NewGuid().ToString("N");
            var r = Run("wat2wasm", ["--debug-names", src, "-o", tmp]);
            if (r.ExitCode != 0) throw new InvalidOperationException("wat2wasm failed:\n" + r.Stderr);
            File.Move(tmp, output, overwrite: true);
        }
        return File.ReadAllBytes(output);
    }

    private static string Hash(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16].ToLowerInvariant();

    public static CompiledModule Compile(byte[] wasm)
    {
        var module = ModuleDecoder.Decode(wasm);
        ModuleValidator.Validate(module);
        return ModuleCompiler.Compile(module);
    }
}

/// <summary>A fresh temporary directory, removed when disposed.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Directory.CreateDirectory(Path);
        // Resolve /tmp symlinks so host paths compare equal to what the kernel reports.
        Path = new DirectoryInfo(Path).ResolveLinkTarget(true)?.FullName ?? Path;
    }

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ferry-wasi-" + Guid.NewGuid().ToString("N"));

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>Runs a WASI module in-process with captured stdout/stderr.</summary>
public sealed class WasiRun : IDisposable
{
    public WasiRun(byte[] wasm, WasiOptions options)
        : this(Env.Compile(wasm), ctx => new WasiContext(ctx.Captured(options)))
    {
    }

    /// <summary>Runs <paramref name="compiled"/> with a context made by <paramref name="makeContext"/> (e.g. a restore).</summary>
    public WasiRun(CompiledModule compiled, Func<WasiRun, WasiContext> makeContext)
    {
        Context = makeContext(this);
        var linker = new Linker();
        Host = WasiHost.Define(linker, Context);
        Instance = Instance.Instantiate(compiled, linker);
        Host.Bind(Instance);
    }

    /// <summary>The options with the process's stdio replaced by this run's captured streams (stdin empty).</summary>
    public WasiOptions Captured(WasiOptions options) => options with
    {
        Stdout = options.Stdout.Stream is null && options.Stdout.HostFd == 1 ? WasiStdio.FromStream(Stdout) : options.Stdout,
        Stderr = options.Stderr.Stream is null && options.Stderr.HostFd == 2 ? WasiStdio.FromStream(Stderr) : options.Stderr,
        Stdin = options.Stdin.Stream is null && options.Stdin.HostFd == 0 ? WasiStdio.FromStream(new MemoryStream()) : options.Stdin,
    };

    public MemoryStream Stdout { get; } = new();
    public MemoryStream Stderr { get; } = new();
    public WasiContext Context { get; }
    public WasiHost Host { get; }
    public Instance Instance { get; }

    public string Out => Encoding.UTF8.GetString(Stdout.ToArray());
    public string Err => Encoding.UTF8.GetString(Stderr.ToArray());

    public int Start() => Host.RunStart();

    public static (int Code, string Out, string Err) Command(string wasmPath, WasiOptions options)
    {
        using var run = new WasiRun(File.ReadAllBytes(wasmPath), options);
        var code = run.Start();
        return (code, run.Out, run.Err);
    }

    public void Dispose() => Context.Dispose();
}
